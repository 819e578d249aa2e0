// The synthesized template, default configuration: resources, network, database, IAM, App Runner.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { CfnResource } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { ECR_PULL_ACTIONS, XRAY_WRITE_ACTIONS } from '../lib/users-api-stack';
import {
  asArray,
  getAtt,
  identityStatements,
  logicalId,
  only,
  ref,
  resourcesOf,
  serviceEnvironment,
  synthCached,
} from './support';

const s = synthCached();
const { json, stack, template } = s;
const ids = {
  vpc: logicalId(stack, stack.vpc),
  connectorSg: logicalId(stack, stack.connectorSecurityGroup),
  databaseSg: logicalId(stack, stack.databaseSecurityGroup),
  cluster: logicalId(stack, stack.database),
  dbSecretRef: logicalId(stack, stack.databaseSecret),
  jwtSecret: logicalId(stack, stack.jwtSecret),
  instanceRole: logicalId(stack, stack.instanceRole),
  accessRole: logicalId(stack, stack.accessRole),
  connector: logicalId(stack, stack.vpcConnector),
  observability: logicalId(stack, stack.observability),
  autoScaling: logicalId(stack, stack.autoScaling),
  jobsTopic: logicalId(stack, stack.jobs.topic),
  jobsKey: logicalId(stack, stack.jobs.key),
};

describe('resources', () => {
  it('has each main resource exactly once', () => {
    const once = [
      'AWS::EC2::VPC',
      'AWS::EC2::NatGateway',
      'AWS::EC2::EIP',
      'AWS::EC2::InternetGateway',
      'AWS::RDS::DBCluster',
      'AWS::RDS::DBInstance',
      'AWS::RDS::DBSubnetGroup',
      'AWS::SecretsManager::SecretTargetAttachment',
      'AWS::AppRunner::Service',
      'AWS::AppRunner::VpcConnector',
      'AWS::AppRunner::ObservabilityConfiguration',
      'AWS::AppRunner::AutoScalingConfiguration',
      'AWS::EC2::SecurityGroupIngress',
      'AWS::EC2::SecurityGroupEgress',
    ];
    for (const type of once) template.resourceCountIs(type, 1);
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    template.resourceCountIs('AWS::IAM::Role', 2);
    template.resourceCountIs('AWS::EC2::SecurityGroup', 2);
  });

  it('has no Lambda-backed custom resources, managed policies or standalone policies', () => {
    for (const type of [
      'AWS::Lambda::Function',
      'AWS::CloudFormation::CustomResource',
      'AWS::IAM::ManagedPolicy',
      'AWS::IAM::Policy',
      'AWS::IAM::User',
      'AWS::ECR::Repository',
    ]) {
      template.resourceCountIs(type, 0);
    }
    const custom = Object.values(json.Resources).filter((r) => r.Type.startsWith('Custom::'));
    assert.deepEqual(custom, []);
  });
});

describe('network', () => {
  it('is a 10.0.0.0/16 VPC with one NAT gateway', () => {
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.0.0.0/16' });
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
  });

  it('has public, private-with-egress and isolated subnets in two AZs', () => {
    const subnets = resourcesOf(json, 'AWS::EC2::Subnet');
    const kinds = Object.values(subnets).map(
      (r) => asArray<{ Key: string; Value: string }>(r.Properties!.Tags).find((t) => t.Key === 'aws-cdk:subnet-type')!.Value,
    );
    assert.deepEqual(kinds.sort(), ['Isolated', 'Isolated', 'Private', 'Private', 'Public', 'Public']);
  });

  it('routes private subnets through the NAT gateway and gives isolated subnets no route out', () => {
    const routes = Object.values(resourcesOf(json, 'AWS::EC2::Route')).map((r) => r.Properties!);
    const viaNat = routes.filter((r) => r.NatGatewayId !== undefined);
    const viaIgw = routes.filter((r) => r.GatewayId !== undefined);
    assert.equal(viaNat.length, 2, 'one default route per private subnet, both via the NAT gateway');
    assert.equal(viaIgw.length, 2, 'one default route per public subnet');
    assert.equal(routes.length, 4, 'no other routes: isolated subnets have none');
    for (const r of routes) assert.equal(r.DestinationCidrBlock, '0.0.0.0/0');
  });
});

describe('security groups', () => {
  it('let only the connector group reach the database, on 5432', () => {
    const ingress = Object.values(resourcesOf(json, 'AWS::EC2::SecurityGroupIngress')).map((r) => r.Properties);
    assert.deepEqual(ingress, [
      {
        IpProtocol: 'tcp',
        FromPort: 5432,
        ToPort: 5432,
        GroupId: getAtt(ids.databaseSg, 'GroupId'),
        SourceSecurityGroupId: getAtt(ids.connectorSg, 'GroupId'),
        Description: 'PostgreSQL from the App Runner VPC connector',
      },
    ]);
  });

  it('have no inline ingress rules', () => {
    for (const [id, sg] of Object.entries(resourcesOf(json, 'AWS::EC2::SecurityGroup'))) {
      assert.equal(sg.Properties!.SecurityGroupIngress, undefined, `${id} has inline ingress`);
    }
  });

  it('let the connector out to the database on 5432 and to HTTPS only', () => {
    const connector = json.Resources[ids.connectorSg].Properties!;
    assert.deepEqual(connector.SecurityGroupEgress, [
      {
        CidrIp: '0.0.0.0/0',
        IpProtocol: 'tcp',
        FromPort: 443,
        ToPort: 443,
        Description: 'HTTPS to AWS APIs (Secrets Manager, SNS) through the NAT gateway',
      },
    ]);
    const egress = Object.values(resourcesOf(json, 'AWS::EC2::SecurityGroupEgress')).map((r) => r.Properties);
    assert.deepEqual(egress, [
      {
        IpProtocol: 'tcp',
        FromPort: 5432,
        ToPort: 5432,
        GroupId: getAtt(ids.connectorSg, 'GroupId'),
        DestinationSecurityGroupId: getAtt(ids.databaseSg, 'GroupId'),
        Description: 'PostgreSQL from the App Runner VPC connector',
      },
    ]);
  });

  it('give the database no way out', () => {
    const db = json.Resources[ids.databaseSg].Properties!;
    // CDK's placeholder for "no egress" (an ICMP rule to an address that matches nothing).
    assert.deepEqual(db.SecurityGroupEgress, [
      { CidrIp: '255.255.255.255/32', Description: 'Disallow all traffic', FromPort: 252, IpProtocol: 'icmp', ToPort: 86 },
    ]);
  });
});

describe('database', () => {
  it('is Aurora PostgreSQL Serverless v2 scaling from 0.5 to 5 ACUs', () => {
    const [, cluster] = only(json, 'AWS::RDS::DBCluster');
    assert.equal(cluster.Properties!.Engine, 'aurora-postgresql');
    assert.deepEqual(cluster.Properties!.ServerlessV2ScalingConfiguration, { MinCapacity: 0.5, MaxCapacity: 5 });
    const [, writer] = only(json, 'AWS::RDS::DBInstance');
    assert.equal(writer.Properties!.DBInstanceClass, 'db.serverless');
    assert.deepEqual(writer.Properties!.DBClusterIdentifier, ref(ids.cluster));
    assert.equal(writer.Properties!.PubliclyAccessible, false);
  });

  it('is built without property overrides (serverless v2 through the L2 API)', () => {
    for (const construct of stack.node.findAll()) {
      if (!CfnResource.isCfnResource(construct)) continue;
      // `rawOverrides` is where addOverride / addPropertyOverride collect their changes.
      const overrides = (construct as unknown as { rawOverrides: object }).rawOverrides;
      assert.deepEqual(Object.keys(overrides), [], `${construct.node.path} has overrides`);
    }
  });

  it('is encrypted, in the isolated subnets, behind its own security group, with TLS forced', () => {
    const [, cluster] = only(json, 'AWS::RDS::DBCluster');
    const p = cluster.Properties!;
    assert.equal(p.StorageEncrypted, true);
    assert.equal(p.Port, 5432);
    assert.equal(p.DatabaseName, 'users');
    assert.deepEqual(p.VpcSecurityGroupIds, [getAtt(ids.databaseSg, 'GroupId')]);
    const [, group] = only(json, 'AWS::RDS::DBSubnetGroup');
    const isolated = stack.vpc.isolatedSubnets.map((sn) => ref(logicalId(stack, sn)));
    assert.deepEqual(group.Properties!.SubnetIds, isolated);
    template.hasResourceProperties('AWS::RDS::DBClusterParameterGroup', {
      Family: Match.stringLikeRegexp('^aurora-postgresql'),
      Parameters: { 'rds.force_ssl': '1' },
    });
  });

  it('takes its master password from a generated secret', () => {
    const [, cluster] = only(json, 'AWS::RDS::DBCluster');
    assert.match(JSON.stringify(cluster.Properties!.MasterUserPassword), /resolve:secretsmanager:.*:SecretString:password::/);
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: Match.objectLike({
        GenerateStringKey: 'password',
        SecretStringTemplate: '{"username":"users_api"}',
      }),
    });
    template.hasResourceProperties('AWS::SecretsManager::SecretTargetAttachment', {
      TargetId: ref(ids.cluster),
      TargetType: 'AWS::RDS::DBCluster',
    });
  });

  it('keeps a snapshot on delete and has no deletion protection by default', () => {
    const [, cluster] = only(json, 'AWS::RDS::DBCluster');
    assert.equal(cluster.DeletionPolicy, 'Snapshot');
    assert.equal(cluster.Properties!.DeletionProtection, false);
  });
});

describe('JWT secret', () => {
  it('is a generated 64-character key', () => {
    const jwt = json.Resources[ids.jwtSecret];
    assert.deepEqual(jwt.Properties!.GenerateSecretString, {
      ExcludePunctuation: true,
      IncludeSpace: false,
      PasswordLength: 64,
    });
  });
});

describe('IAM', () => {
  const statements = identityStatements(json);

  it('has only the instance role and the access role, assumed by App Runner', () => {
    const roles = resourcesOf(json, 'AWS::IAM::Role');
    assert.deepEqual(Object.keys(roles).sort(), [ids.accessRole, ids.instanceRole].sort());
    assert.deepEqual(roles[ids.instanceRole].Properties!.AssumeRolePolicyDocument.Statement, [
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'tasks.apprunner.amazonaws.com' } },
    ]);
    assert.deepEqual(roles[ids.accessRole].Properties!.AssumeRolePolicyDocument.Statement, [
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'build.apprunner.amazonaws.com' } },
    ]);
    for (const role of Object.values(roles)) {
      assert.equal(role.Properties!.ManagedPolicyArns, undefined, 'no managed policies');
    }
  });

  it('gives the instance role exactly the X-Ray writes, GetSecretValue on the two secrets and publishing jobs', () => {
    const mine = statements.filter((s) => s.owner === ids.instanceRole).map((s) => s.statement);
    assert.deepEqual(mine, [
      { Sid: 'XRayWriteOnly', Effect: 'Allow', Action: [...XRAY_WRITE_ACTIONS], Resource: '*' },
      {
        Sid: 'ReadTheTwoSecrets',
        Effect: 'Allow',
        Action: 'secretsmanager:GetSecretValue',
        Resource: [ref(ids.dbSecretRef), ref(ids.jwtSecret)],
      },
      { Sid: 'PublishJobs', Effect: 'Allow', Action: 'sns:Publish', Resource: ref(ids.jobsTopic) },
      { Sid: 'EncryptJobs', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: getAtt(ids.jobsKey, 'Arn') },
    ]);
  });

  it('gives the access role ECR pulls on the asset repository (and the account-wide ECR login)', () => {
    const mine = statements.filter((s) => s.owner === ids.accessRole).map((s) => s.statement);
    assert.equal(mine.length, 2);
    assert.deepEqual(mine[0].Action, [...ECR_PULL_ACTIONS]);
    assert.match(JSON.stringify(mine[0].Resource), /:repository\/.*cdk-[a-z0-9]+-container-assets-/);
    assert.deepEqual(mine[1], { Sid: 'EcrLogin', Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' });
  });

  it('uses resource "*" only for actions that have no resource-level permissions', () => {
    const allowedOnStar = new Set([...XRAY_WRITE_ACTIONS, 'ecr:GetAuthorizationToken']);
    for (const { owner, statement } of statements) {
      assert.equal(statement.Effect, 'Allow');
      const resources = asArray(statement.Resource as unknown);
      if (resources.some((r) => typeof r === 'string' && r.includes('*'))) {
        for (const action of asArray(statement.Action)) {
          assert.ok(allowedOnStar.has(action), `${owner}: ${action} granted on a wildcard resource`);
        }
      }
    }
  });

  it('names every action in full (no action wildcards)', () => {
    for (const { owner, statement } of statements) {
      for (const action of asArray(statement.Action)) {
        assert.doesNotMatch(action, /\*/, `${owner}: ${action}`);
      }
    }
  });

  it('grants GetSecretValue on nothing but the two secrets', () => {
    const grants = statements.filter(({ statement }) =>
      asArray(statement.Action).some((a) => a.startsWith('secretsmanager:')),
    );
    assert.equal(grants.length, 1);
    assert.deepEqual(grants[0].statement.Resource, [ref(ids.dbSecretRef), ref(ids.jwtSecret)]);
  });
});

describe('App Runner', () => {
  const [, service] = only(json, 'AWS::AppRunner::Service');
  const p = service.Properties!;

  it('runs the image asset from ECR on port 8080 with the two roles', () => {
    const repo = p.SourceConfiguration.ImageRepository;
    assert.equal(repo.ImageRepositoryType, 'ECR');
    assert.match(JSON.stringify(repo.ImageIdentifier), new RegExp(`container-assets-.*:${stack.image.assetHash}`));
    assert.equal(repo.ImageConfiguration.Port, '8080');
    assert.equal(p.SourceConfiguration.AutoDeploymentsEnabled, false);
    assert.deepEqual(p.SourceConfiguration.AuthenticationConfiguration, { AccessRoleArn: getAtt(ids.accessRole, 'Arn') });
    assert.deepEqual(p.InstanceConfiguration.InstanceRoleArn, getAtt(ids.instanceRole, 'Arn'));
  });

  it('sends egress through the VPC connector in the private subnets with the connector group', () => {
    assert.deepEqual(p.NetworkConfiguration.EgressConfiguration, {
      EgressType: 'VPC',
      VpcConnectorArn: getAtt(ids.connector, 'VpcConnectorArn'),
    });
    const connector = json.Resources[ids.connector].Properties!;
    const privateSubnets = stack.vpc.privateSubnets.map((sn) => ref(logicalId(stack, sn)));
    assert.deepEqual(connector.Subnets, privateSubnets);
    assert.deepEqual(connector.SecurityGroups, [getAtt(ids.connectorSg, 'GroupId')]);
  });

  it('has X-Ray tracing enabled', () => {
    assert.deepEqual(p.ObservabilityConfiguration, {
      ObservabilityEnabled: true,
      ObservabilityConfigurationArn: getAtt(ids.observability, 'ObservabilityConfigurationArn'),
    });
    assert.deepEqual(json.Resources[ids.observability].Properties!.TraceConfiguration, { Vendor: 'AWSXRAY' });
  });

  it('checks health over HTTP on /healthz', () => {
    assert.equal(p.HealthCheckConfiguration.Protocol, 'HTTP');
    assert.equal(p.HealthCheckConfiguration.Path, '/healthz');
  });

  it('names the service in OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME', () => {
    const env = serviceEnvironment(service);
    assert.equal(env.OTEL_SERVICE_NAME, 'users-api');
    assert.equal(env.OTEL_RESOURCE_ATTRIBUTES, 'service.name=users-api,cloud.platform=aws_app_runner');
    assert.equal(env.PORT, undefined, 'PORT is reserved by App Runner');
  });

  it('puts no secret value in plain environment variables', () => {
    const env = JSON.stringify(serviceEnvironment(service));
    assert.doesNotMatch(env, /resolve:secretsmanager/);
    assert.doesNotMatch(env, /password/i);
  });

  it('caps scaling with its own auto scaling configuration', () => {
    assert.deepEqual(p.AutoScalingConfigurationArn, getAtt(ids.autoScaling, 'AutoScalingConfigurationArn'));
    const { MinSize, MaxSize, MaxConcurrency } = json.Resources[ids.autoScaling].Properties!;
    assert.deepEqual({ MinSize, MaxSize, MaxConcurrency }, { MinSize: 1, MaxSize: 2, MaxConcurrency: 100 });
  });
});

describe('outputs', () => {
  it('give the service URL and where its traces are', () => {
    const outputs = json.Outputs!;
    assert.deepEqual(outputs.ServiceUrl.Value, { 'Fn::Join': ['', ['https://', getAtt('Service', 'ServiceUrl')]] });
    assert.match(JSON.stringify(outputs.TracesUrl.Value), /console\.aws\.amazon\.com\/cloudwatch\/home\?region=.*#xray:traces\/query/);
    assert.match(JSON.stringify(outputs.TraceByIdUrlPrefix.Value), /#xray:traces\/"/);
    assert.equal(outputs.TraceFilter.Value, 'service("users-api")');
  });
});
