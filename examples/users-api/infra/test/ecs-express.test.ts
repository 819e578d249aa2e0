// The ECS Express Mode stack (UsersApiEcs): service, roles, OTLP tracing, Transaction Search,
// the pieces it shares with the App Runner stack, and cdk-nag.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Duration } from 'aws-cdk-lib';
import { buildApp, ECS_STACK_NAME, STACK_NAME } from '../lib/app';
import { EXPRESS_INFRASTRUCTURE_POLICY, TRANSACTION_SEARCH_LOG_GROUPS, XRAY_OTLP_ACTIONS } from '../lib/ecs-express-stack';
import { ECR_PULL_ACTIONS } from '../lib/users-api-stack';
import {
  asArray,
  containerEnvironment,
  containerSecrets,
  getAtt,
  identityStatements,
  logicalId,
  nagAcknowledgments,
  nagFindings,
  only,
  ref,
  resourcesOf,
  synthCached,
  synthEcs,
} from './support';

const s = synthEcs();
const { json, stack, template } = s;
const [serviceId, service] = only(json, 'AWS::ECS::ExpressGatewayService');
const p = service.Properties!;
const ids = {
  infrastructureRole: logicalId(stack, stack.infrastructureRole),
  executionRole: logicalId(stack, stack.executionRole),
  taskRole: logicalId(stack, stack.taskRole),
  serviceSg: logicalId(stack, stack.serviceSecurityGroup),
  databaseSg: logicalId(stack, stack.databaseSecurityGroup),
  dbSecret: logicalId(stack, stack.databaseSecret),
  jwtSecret: logicalId(stack, stack.jwtSecret),
  logGroup: logicalId(stack, stack.logGroup),
  cluster: logicalId(stack, stack.cluster),
  jobsTopic: logicalId(stack, stack.jobs.topic),
  jobsKey: logicalId(stack, stack.jobs.key),
};

describe('ECS stack: resources', () => {
  it('is an AWS::ECS::ExpressGatewayService on its own cluster, with the shared VPC, Aurora and secrets', () => {
    for (const type of [
      'AWS::ECS::ExpressGatewayService',
      'AWS::ECS::Cluster',
      'AWS::EC2::VPC',
      'AWS::EC2::NatGateway',
      'AWS::RDS::DBCluster',
      'AWS::RDS::DBInstance',
      'AWS::SecretsManager::SecretTargetAttachment',
      'AWS::Logs::LogGroup',
    ]) {
      template.resourceCountIs(type, 1);
    }
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    template.resourceCountIs('AWS::IAM::Role', 3);
    assert.deepEqual(p.Cluster, ref(ids.cluster));
  });

  it('has no Lambda-backed custom resources, standalone policies, App Runner or task definition', () => {
    for (const type of [
      'AWS::Lambda::Function',
      'AWS::IAM::Policy',
      'AWS::IAM::ManagedPolicy',
      'AWS::ECS::TaskDefinition',
      'AWS::ECS::Service',
      'AWS::AppRunner::Service',
    ]) {
      template.resourceCountIs(type, 0);
    }
    assert.deepEqual(Object.values(json.Resources).filter((r) => r.Type.startsWith('Custom::')), []);
  });

  it('creates no Transaction Search configuration unless asked (it is account-wide)', () => {
    template.resourceCountIs('AWS::XRay::TransactionSearchConfig', 0);
    template.resourceCountIs('AWS::Logs::ResourcePolicy', 0);
  });
});

describe('ECS stack: service', () => {
  it('wires the infrastructure, execution and task roles', () => {
    assert.deepEqual(p.InfrastructureRoleArn, getAtt(ids.infrastructureRole, 'Arn'));
    assert.deepEqual(p.ExecutionRoleArn, getAtt(ids.executionRole, 'Arn'));
    assert.deepEqual(p.TaskRoleArn, getAtt(ids.taskRole, 'Arn'));
  });

  it('checks health on /healthz', () => {
    assert.equal(p.HealthCheckPath, '/healthz');
  });

  it('runs the same image asset as the App Runner stack, on port 8080', () => {
    const c = p.PrimaryContainer;
    assert.equal(c.ContainerPort, 8080);
    assert.match(JSON.stringify(c.Image), new RegExp(`container-assets-.*:${stack.image.assetHash}`));
    assert.equal(stack.image.assetHash, synthCached().stack.image.assetHash);
  });

  it('exports traces over OTLP/HTTP protobuf straight to the X-Ray endpoint of its region', () => {
    const env = containerEnvironment(service);
    assert.deepEqual(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, {
      'Fn::Join': ['', ['https://xray.', { Ref: 'AWS::Region' }, '.amazonaws.com/v1/traces']],
    });
    assert.equal(env.OTEL_EXPORTER_OTLP_PROTOCOL, 'http/protobuf');
    assert.equal(env.OTEL_SERVICE_NAME, 'users-api');
    assert.equal(env.OTEL_RESOURCE_ATTRIBUTES, 'service.name=users-api,cloud.platform=aws_ecs');
  });

  it('injects both secrets whole through the container secrets, as DB_SECRET and JWT_SECRET', () => {
    assert.deepEqual(containerSecrets(service), { DB_SECRET: ref(ids.dbSecret), JWT_SECRET: ref(ids.jwtSecret) });
    const env = containerEnvironment(service);
    for (const name of ['DB_SECRET', 'JWT_SECRET', 'DB_SECRET_NAME', 'JWT_SECRET_NAME', 'APPRUNNER_SECRETS']) {
      assert.equal(env[name], undefined, name);
    }
    assert.doesNotMatch(JSON.stringify(env), /resolve:secretsmanager|password/i);
  });

  it('logs to its own log group (one month) and runs in the app subnets behind its own security group', () => {
    assert.deepEqual(p.PrimaryContainer.AwsLogsConfiguration, { LogGroup: ref(ids.logGroup), LogStreamPrefix: 'users-api' });
    assert.equal(json.Resources[ids.logGroup].Properties!.RetentionInDays, 30);
    const app = stack.vpc.selectSubnets({ subnetGroupName: 'app' }).subnets.map((sn) => ref(logicalId(stack, sn)));
    assert.deepEqual(p.NetworkConfiguration, { Subnets: app, SecurityGroups: [getAtt(ids.serviceSg, 'GroupId')] });
  });

  it('scales from 1 to 2 tasks of 0.25 vCPU and 512 MiB', () => {
    assert.deepEqual([p.Cpu, p.Memory], ['256', '512']);
    assert.deepEqual(p.ScalingTarget, { AutoScalingMetric: 'AVERAGE_CPU', AutoScalingTargetValue: 60, MinTaskCount: 1, MaxTaskCount: 2 });
    const more = synthEcs({ 'users-api:maxTasks': '4' });
    assert.equal(only(more.json, 'AWS::ECS::ExpressGatewayService')[1].Properties!.ScalingTarget.MaxTaskCount, 4);
  });

  it('lets only the tasks reach the database, on 5432', () => {
    const ingress = Object.values(resourcesOf(json, 'AWS::EC2::SecurityGroupIngress')).map((r) => r.Properties);
    assert.deepEqual(ingress, [
      {
        IpProtocol: 'tcp',
        FromPort: 5432,
        ToPort: 5432,
        GroupId: getAtt(ids.databaseSg, 'GroupId'),
        SourceSecurityGroupId: getAtt(ids.serviceSg, 'GroupId'),
        Description: 'PostgreSQL from the ECS Express tasks',
      },
    ]);
  });

  it('outputs the endpoint and where the traces are', () => {
    assert.deepEqual(json.Outputs!.ServiceEndpoint.Value, getAtt(serviceId, 'Endpoint'));
    assert.equal(json.Outputs!.TraceFilter.Value, 'service("users-api")');
    assert.match(JSON.stringify(json.Outputs!.TracesEndpoint.Value), /https:\/\/xray\./);
  });
});

describe('ECS stack: IAM', () => {
  const statements = identityStatements(json);
  const of = (owner: string) => statements.filter((x) => x.owner === owner).map((x) => x.statement);
  const roles = resourcesOf(json, 'AWS::IAM::Role');
  const trust = (id: string) => roles[id].Properties!.AssumeRolePolicyDocument.Statement;

  it('gives the task role exactly the X-Ray OTLP upload actions, on "*" (no resource types), and publishing jobs', () => {
    assert.deepEqual(XRAY_OTLP_ACTIONS, ['xray:PutSpans', 'xray:PutTraceSegments']);
    assert.deepEqual(of(ids.taskRole), [
      { Sid: 'XRayOtlpUpload', Effect: 'Allow', Action: ['xray:PutSpans', 'xray:PutTraceSegments'], Resource: '*' },
      { Sid: 'PublishJobs', Effect: 'Allow', Action: 'sns:Publish', Resource: ref(ids.jobsTopic) },
      { Sid: 'EncryptJobs', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: getAtt(ids.jobsKey, 'Arn') },
    ]);
    assert.equal(roles[ids.taskRole].Properties!.ManagedPolicyArns, undefined);
    assert.deepEqual(trust(ids.taskRole), [
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' } },
    ]);
  });

  it('gives the execution role the image pull, its log group and the two secrets only', () => {
    const mine = of(ids.executionRole);
    assert.deepEqual(mine.map((x) => x.Sid), ['PullFromTheAssetRepository', 'EcrLogin', 'WriteContainerLogs', 'InjectTheTwoSecrets']);
    assert.deepEqual(mine[0].Action, [...ECR_PULL_ACTIONS]);
    assert.match(JSON.stringify(mine[0].Resource), /:repository\/.*cdk-[a-z0-9]+-container-assets-/);
    assert.deepEqual(mine[1], { Sid: 'EcrLogin', Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' });
    assert.deepEqual(mine[2].Action, ['logs:CreateLogStream', 'logs:PutLogEvents']);
    assert.deepEqual(mine[2].Resource, { 'Fn::Join': ['', [getAtt(ids.logGroup, 'Arn'), ':log-stream:*']] });
    assert.deepEqual(mine[3].Resource, [ref(ids.dbSecret), ref(ids.jwtSecret)]);
    assert.deepEqual(trust(ids.executionRole), [
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' } },
    ]);
  });

  it('gives the infrastructure role the AWS managed Express Mode policy, assumed by ECS', () => {
    const r = roles[ids.infrastructureRole].Properties!;
    assert.deepEqual(r.ManagedPolicyArns, [
      { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::aws:policy/${EXPRESS_INFRASTRUCTURE_POLICY}`]] },
    ]);
    assert.equal(r.Policies, undefined);
    assert.deepEqual(trust(ids.infrastructureRole), [
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'ecs.amazonaws.com' } },
    ]);
  });

  it('grants "*" only for the X-Ray upload actions and ecr:GetAuthorizationToken, and no action wildcards', () => {
    for (const { owner, statement } of statements) {
      for (const action of asArray(statement.Action)) assert.doesNotMatch(action, /\*/, `${owner}: ${action}`);
      if (asArray(statement.Resource as unknown).includes('*')) {
        for (const action of asArray(statement.Action)) {
          assert.ok(['xray:PutTraceSegments', 'xray:PutSpans', 'ecr:GetAuthorizationToken'].includes(action), `${owner}: ${action} on "*"`);
        }
      }
    }
  });

  it('with secret names, moves GetSecretValue from the execution role to the task role', () => {
    const names = synthEcs({ 'users-api:secretsMode': 'names' });
    const [, svc] = only(names.json, 'AWS::ECS::ExpressGatewayService');
    const st = identityStatements(names.json);
    const task = st.filter((x) => x.owner === logicalId(names.stack, names.stack.taskRole)).map((x) => x.statement);
    const exec = st.filter((x) => x.owner === logicalId(names.stack, names.stack.executionRole)).map((x) => x.statement);
    assert.deepEqual(task.map((x) => x.Action), [
      ['xray:PutSpans', 'xray:PutTraceSegments'],
      'sns:Publish',
      ['kms:Decrypt', 'kms:GenerateDataKey'],
      'secretsmanager:GetSecretValue',
    ]);
    assert.ok(!exec.some((x) => asArray(x.Action).includes('secretsmanager:GetSecretValue')));
    assert.equal(svc.Properties!.PrimaryContainer.Secrets, undefined);
    const env = containerEnvironment(svc);
    assert.deepEqual(env.DB_SECRET_NAME, ref(logicalId(names.stack, names.stack.databaseSecret)));
    assert.deepEqual(env.JWT_SECRET_NAME, ref(logicalId(names.stack, names.stack.jwtSecret)));
  });
});

describe('ECS stack: Transaction Search (users-api:transactionSearch=true)', () => {
  const ts = synthEcs({ 'users-api:transactionSearch': 'true' });
  const [configId, config] = only(ts.json, 'AWS::XRay::TransactionSearchConfig');
  const [policyId, policy] = only(ts.json, 'AWS::Logs::ResourcePolicy');

  it('indexes 1 % of spans (the free share) and is created after the Logs resource policy', () => {
    assert.deepEqual(config.Properties, { IndexingPercentage: 1 });
    assert.deepEqual(config.DependsOn, [policyId]);
  });

  it('lets only X-Ray, from this account, put events into aws/spans and the Application Signals group', () => {
    // The document is a Fn::Join of JSON text and references (partition, region, account): X.
    const parts: unknown[] = policy.Properties!.PolicyDocument['Fn::Join'][1];
    const parsed = JSON.parse(parts.map((x) => (typeof x === 'string' ? x : 'X')).join(''));
    assert.equal(policy.Properties!.PolicyName, 'TransactionSearchAccess');
    const [st] = parsed.Statement;
    assert.equal(parsed.Statement.length, 1);
    assert.deepEqual(st.Principal, { Service: 'xray.amazonaws.com' });
    assert.equal(st.Action, 'logs:PutLogEvents');
    assert.deepEqual(
      st.Resource.map((r: string) => r.replace(/^arn:X:logs:X:X:log-group:/, '').replace(/:\*$/, '')),
      [...TRANSACTION_SEARCH_LOG_GROUPS],
    );
    assert.deepEqual(Object.keys(st.Condition).sort(), ['ArnLike', 'StringEquals']);
    assert.equal(st.Condition.StringEquals['aws:SourceAccount'], 'X');
  });

  it('starts the service only once Transaction Search is on', () => {
    const [, svc] = only(ts.json, 'AWS::ECS::ExpressGatewayService');
    assert.ok(asArray(svc.DependsOn).includes(configId));
  });

  it('rejects a flag that is not true or false', () => {
    assert.throws(() => synthEcs({ 'users-api:transactionSearch': 'yes' }), /transactionSearch must be true or false/);
  });
});

describe('ECS stack: shared building blocks', () => {
  const appRunner = synthCached();
  // Without metadata, and with the stack name made the same where the CDK puts it (Name tags,
  // the generated secret's logical id, whose hash covers its path).
  const strip = (r: unknown) =>
    JSON.parse(
      JSON.stringify(r, (k, v) => (k === 'Metadata' ? undefined : v))
        .replace(/UsersApiEcs\//g, 'UsersApi/')
        .replace(/UsersApi(Ecs)?DatabaseSecret[0-9A-F]{8}/g, 'DatabaseSecret'),
    );

  it('has the same VPC, subnets, Aurora cluster and secrets as the App Runner stack', () => {
    for (const type of [
      'AWS::EC2::VPC',
      'AWS::EC2::Subnet',
      'AWS::EC2::NatGateway',
      'AWS::RDS::DBCluster',
      'AWS::RDS::DBInstance',
      'AWS::RDS::DBSubnetGroup',
      'AWS::SecretsManager::Secret',
    ]) {
      assert.deepEqual(strip(resourcesOf(json, type)), strip(resourcesOf(appRunner.json, type)), type);
    }
  });

  it('takes the database capacity from the same context', () => {
    const paused = synthEcs({ 'users-api:dbMinCapacity': 0, 'users-api:dbAutoPauseMinutes': 10 });
    assert.deepEqual(only(paused.json, 'AWS::RDS::DBCluster')[1].Properties!.ServerlessV2ScalingConfiguration, {
      MinCapacity: 0,
      MaxCapacity: 5,
      SecondsUntilAutoPause: 600,
    });
    assert.throws(() => synthEcs({}, { dbAutoPauseAfter: Duration.minutes(10) }), /dbAutoPauseAfter needs dbMinCapacity 0/);
  });

  it('is in the same app as the App Runner stack by default', () => {
    const { app } = buildApp({ outdir: s.outdir });
    assert.deepEqual(app.node.children.map((c) => c.node.id).filter((id) => id.startsWith('UsersApi')).sort(), [STACK_NAME, ECS_STACK_NAME]);
    assert.throws(() => buildApp({ context: { 'users-api:stacks': 'lambda' } }), /users-api:stacks must name apprunner/);
  });
});

describe('ECS stack: cdk-nag AwsSolutions', () => {
  const variants: Array<[string, Record<string, unknown>]> = [
    ['default', {}],
    ['secret names', { 'users-api:secretsMode': 'names' }],
    ['Transaction Search', { 'users-api:transactionSearch': 'true' }],
    ['VPC endpoints', { 'users-api:vpcEndpoints': 'true' }],
  ];
  for (const [name, context] of variants) {
    it(`finds nothing unacknowledged: ${name}`, () => {
      assert.deepEqual(nagFindings(synthEcs(context).app), []);
    });
  }

  it('gives every acknowledgment a reason, and acknowledges nothing that is not found', () => {
    const acks = nagAcknowledgments(s.app);
    assert.ok(acks.length > 0);
    const raw = nagFindings(s.app, true);
    for (const a of acks) {
      assert.equal(typeof a.reason, 'string', `${a.path} ${a.id}`);
      assert.ok((a.reason as string).trim().length >= 40, `${a.path} ${a.id}: reason too short`);
      const hit = raw.find((f) => f.rule === a.id && f.paths.some((x) => x === a.path || x.startsWith(`${a.path}/`)));
      assert.ok(hit, `${a.path} acknowledges ${a.id}, which is not found there`);
    }
  });

  it('acknowledges only the expected rules', () => {
    const ids = new Set(nagAcknowledgments(s.app).map((a) => a.id));
    assert.deepEqual([...ids].sort(), [
      'AwsSolutions-ECS4',
      `AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/${EXPRESS_INFRASTRUCTURE_POLICY}]`,
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::<LogGroupF5B46931.Arn>:log-stream:*]',
      'AwsSolutions-RDS10',
      'AwsSolutions-RDS6',
      'AwsSolutions-SMG4',
      'AwsSolutions-SQS3',
      'AwsSolutions-VPC7',
    ]);
  });
});
