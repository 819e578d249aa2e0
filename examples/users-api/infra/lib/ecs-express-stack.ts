import { Aws, CfnOutput, Fn, RemovalPolicy, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { DockerImageAsset } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as xray from 'aws-cdk-lib/aws-xray';
import { Construct } from 'constructs';
import {
  addDatabase,
  addImage,
  addJwtSecret,
  addNetwork,
  stackPrelude,
  DatabaseProps,
  DB_TLS_ENVIRONMENT,
  EndpointService,
  Jobs,
  JOBS_TOPIC_ARN_ENV,
} from './shared';
import { CONTAINER_PORT, ECR_PULL_ACTIONS, HEALTH_CHECK_PATH, SECRETS_MODES, SecretsMode, SERVICE_NAME } from './users-api-stack';

/**
 * What the task role may do: upload spans to X-Ray's OTLP traces endpoint,
 * `https://xray.<region>.amazonaws.com/v1/traces`, with SigV4 (service `xray`). Nothing else:
 * no segment reads, no sampling rules (the kit samples locally), no Logs.
 *
 * AWS documents two names for that one write:
 * - the X-Ray developer guide, "Setting up bearer token authentication for traces"
 *   (https://docs.aws.amazon.com/xray/latest/devguide/xray-opentelemetry-bearer-token.html): the
 *   OTLP traces endpoint "is authorized as `xray:PutTraceSegments`";
 * - the Service Authorization Reference for X-Ray
 *   (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html):
 *   `PutSpans`, "Grants permission to upload OpenTelemetry spans to AWS X-Ray".
 * Both are write-only actions without resource types (`*` is the only valid resource); the role
 * gets both so that the first deployment traces whichever the endpoint checks. The endpoint
 * only accepts spans once Transaction Search is on in the account (see `transactionSearch`).
 */
export const XRAY_OTLP_ACTIONS: readonly string[] = ['xray:PutSpans', 'xray:PutTraceSegments'];

/** The AWS managed policy AWS documents for the Express Mode infrastructure role. */
export const EXPRESS_INFRASTRUCTURE_POLICY = 'service-role/AmazonECSInfrastructureRoleforExpressGatewayServices';

/**
 * The interface endpoints of the ECS stack with `vpcEndpoints`: the tasks pull the image (ECR
 * API and registry; layers come from S3 through a free gateway endpoint), write logs, read the
 * secrets (at start-up in `runtime` mode the ECS agent reads them with the execution role) and
 * export spans and publish background jobs to SNS, all from inside the VPC.
 */
export const ECS_ENDPOINT_SERVICES: readonly EndpointService[] = ['ecr.api', 'ecr.dkr', 'logs', 'secretsmanager', 'xray', 'sns'];

/** The log groups X-Ray writes to once Transaction Search is on (its resource policy). */
export const TRANSACTION_SEARCH_LOG_GROUPS: readonly string[] = ['aws/spans', '/aws/application-signals/data'];

export interface UsersApiEcsStackProps extends StackProps, DatabaseProps {
  /**
   * How the service receives its secrets: `runtime` has ECS inject both secrets' JSON into
   * `DB_SECRET` and `JWT_SECRET` (container `secrets`, read with the execution role at task
   * start); `names` passes the ARNs and the kit reads them with the task role.
   * @default 'runtime'
   */
  readonly secretsMode?: SecretsMode;
  /** VPC interface endpoints instead of the NAT gateway. @default false */
  readonly vpcEndpoints?: boolean;
  /**
   * Turn on CloudWatch Transaction Search (`AWS::XRay::TransactionSearchConfig` and the Logs
   * resource policy letting X-Ray write `aws/spans`). Account-wide and once per account and
   * region: leave it off where Transaction Search is already on, or the deployment fails.
   * @default false
   */
  readonly transactionSearch?: boolean;
  /** Percentage of spans indexed as trace summaries (1 % is free). @default 1 */
  readonly transactionSearchIndexingPercentage?: number;
  /** Task CPU units. @default '256' (0.25 vCPU) */
  readonly cpu?: string;
  /** Task memory in MiB. @default '512' */
  readonly memory?: string;
  /** Most tasks. @default 2 */
  readonly maxTasks?: number;
  /** The image build context (the repository root). @default - found by walking up from here */
  readonly imageContext?: string;
}

/**
 * The users API on Amazon ECS Express Mode (`AWS::ECS::ExpressGatewayService`, the L1 of
 * aws-cdk-lib; there is no L2 yet): the same VPC, Aurora Serverless v2, secrets and image as
 * the App Runner stack. ECS has no managed collector: the service exports OTLP/HTTP straight to
 * X-Ray's endpoint, signed with SigV4, which needs Transaction Search.
 */
export class UsersApiEcsStack extends Stack {
  readonly vpc: ec2.Vpc;
  readonly endpoints: Partial<Record<EndpointService, ec2.InterfaceVpcEndpoint>>;
  readonly serviceSecurityGroup: ec2.SecurityGroup;
  readonly databaseSecurityGroup: ec2.SecurityGroup;
  readonly database: rds.DatabaseCluster;
  readonly databaseSecret: secretsmanager.ISecret;
  readonly jwtSecret: secretsmanager.Secret;
  readonly image: DockerImageAsset;
  readonly logGroup: logs.LogGroup;
  readonly infrastructureRole: iam.Role;
  readonly executionRole: iam.Role;
  readonly taskRole: iam.Role;
  readonly cluster: ecs.CfnCluster;
  readonly service: ecs.CfnExpressGatewayService;
  /** The background jobs: SNS topic, its HTTPS subscription of the service, the dead-letter queue. */
  readonly jobs: Jobs;
  readonly spansResourcePolicy?: logs.CfnResourcePolicy;
  readonly transactionSearch?: xray.CfnTransactionSearchConfig;
  readonly secretsMode: SecretsMode;

  constructor(scope: Construct, id: string, props: UsersApiEcsStackProps = {}) {
    super(scope, id, {
      description: 'apprunner-kit users API example: ECS Express Mode + Aurora Serverless v2, traced in X-Ray over OTLP',
      ...props,
    });

    const secretsMode = stackPrelude(this, props, SECRETS_MODES, SERVICE_NAME);
    this.secretsMode = secretsMode;

    // ---------------------------------------------------------------------------------------
    // Network, database, secrets and image: the same builders as the App Runner stack.
    const vpcEndpoints = props.vpcEndpoints ?? false;
    const network = addNetwork(this, {
      vpcEndpoints,
      endpointServices: ECS_ENDPOINT_SERVICES,
      s3GatewayEndpoint: true,
      flowLogsReason:
        'VPC flow logs are left out of this example to keep its idle cost down; the only traffic is ' +
        'the load balancer to the tasks and the tasks to Aurora and AWS APIs. Add vpc.addFlowLog() for production.',
      appSecurityGroupId: 'ServiceSecurityGroup',
      appSecurityGroupDescription: 'ECS Express tasks of the users API (egress: HTTPS and the database)',
      httpsEgressDescription: 'HTTPS to AWS APIs (ECR, Logs, Secrets Manager, X-Ray, SNS) through the NAT gateway',
      httpsEgressDescriptionWithEndpoints: 'HTTPS to AWS APIs (ECR, Logs, Secrets Manager, X-Ray, SNS) through VPC endpoints',
    });
    this.vpc = network.vpc;
    this.endpoints = network.endpoints;
    this.serviceSecurityGroup = network.appSecurityGroup;

    const database = addDatabase(this, {
      ...props,
      vpc: this.vpc,
      appSecurityGroup: this.serviceSecurityGroup,
      securityGroupDescription: 'Aurora cluster of the users API (PostgreSQL from the ECS tasks only)',
      ingressDescription: 'PostgreSQL from the ECS Express tasks',
      rotationReason:
        'No automatic rotation: ECS injects container secrets only when a task starts and the kit ' +
        'reads named secrets at start-up, so a rotated password would break running tasks until ' +
        'they are replaced. Rotate by hand and redeploy (see the README).',
    });
    this.databaseSecurityGroup = database.securityGroup;
    this.database = database.cluster;
    this.databaseSecret = database.secret;
    this.jwtSecret = addJwtSecret(this);
    this.image = addImage(this, props.imageContext);
    const secretArns = [this.databaseSecret.secretArn, this.jwtSecret.secretArn];

    // Background jobs (lib/shared.ts): the topic and its dead-letter queue now, the service's
    // subscription once the service exists.
    this.jobs = new Jobs(this, 'Jobs');

    // ---------------------------------------------------------------------------------------
    // Container logs: one month, removed with the stack.
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // ---------------------------------------------------------------------------------------
    // Roles. Infrastructure role (ECS builds the load balancer, target group, security groups,
    // certificate and scaling policies with it), execution role (the ECS agent: image pull,
    // logs, container secrets), task role (the running service: X-Ray OTLP uploads, publishing
    // to the jobs topic).
    this.infrastructureRole = new iam.Role(this, 'InfrastructureRole', {
      assumedBy: new iam.ServicePrincipal('ecs.amazonaws.com'),
      description: 'ECS Express Mode manages the users API load balancer, security groups and scaling',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName(EXPRESS_INFRASTRUCTURE_POLICY)],
    });
    Validations.of(this.infrastructureRole).acknowledge({
      id: `AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/${EXPRESS_INFRASTRUCTURE_POLICY}]`,
      reason:
        'AWS documents this managed policy for the Express Mode infrastructure role and keeps it in ' +
        'step with what Express Mode provisions (load balancer, listener rules, certificates, ' +
        'security groups, scaling); a hand-copied inline version would fall behind it.',
    });

    const executionStatements = [
      new iam.PolicyStatement({
        sid: 'PullFromTheAssetRepository',
        actions: [...ECR_PULL_ACTIONS],
        resources: [this.image.repository.repositoryArn],
      }),
      new iam.PolicyStatement({
        sid: 'EcrLogin',
        actions: ['ecr:GetAuthorizationToken'],
        // GetAuthorizationToken is account-wide and supports no resource-level permissions.
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        sid: 'WriteContainerLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [`${this.logGroup.logGroupArn}:log-stream:*`],
      }),
    ];
    if (secretsMode === 'runtime') {
      executionStatements.push(
        new iam.PolicyStatement({
          sid: 'InjectTheTwoSecrets',
          actions: ['secretsmanager:GetSecretValue'],
          resources: secretArns,
        }),
      );
    }
    this.executionRole = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'users API on ECS: image pull, container logs, container secrets',
      inlinePolicies: { Execution: new iam.PolicyDocument({ statements: executionStatements }) },
    });
    Validations.of(this.executionRole).acknowledge(
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'ecr:GetAuthorizationToken supports no resource-level permissions; the pull actions are ' +
          'limited to the asset repository.',
      },
      {
        id: 'AwsSolutions-IAM5[Resource::<LogGroupF5B46931.Arn>:log-stream:*]',
        reason:
          'Log streams are named by the ECS agent per task at start-up; the grant is limited to ' +
          'the streams of this service\'s own log group.',
      },
    );

    const taskStatements = [
      new iam.PolicyStatement({
        sid: 'XRayOtlpUpload',
        actions: [...XRAY_OTLP_ACTIONS],
        // xray:PutSpans defines no resource types: "*" is the only valid resource.
        resources: ['*'],
      }),
    ];
    taskStatements.push(...this.jobs.publishStatements());
    if (secretsMode === 'names') {
      taskStatements.push(
        new iam.PolicyStatement({
          sid: 'ReadTheTwoSecrets',
          actions: ['secretsmanager:GetSecretValue'],
          resources: secretArns,
        }),
      );
    }
    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description:
        secretsMode === 'names'
          ? 'users API on ECS: X-Ray OTLP span uploads, publishing jobs, its two secrets'
          : 'users API on ECS: X-Ray OTLP span uploads, publishing jobs',
      inlinePolicies: { Task: new iam.PolicyDocument({ statements: taskStatements }) },
    });
    Validations.of(this.taskRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'xray:PutSpans (the OTLP traces endpoint) supports no resource-level permissions, so ' +
        'resource "*" is the only possible grant; it is the only action on "*".',
    });

    // ---------------------------------------------------------------------------------------
    // Transaction Search, account-wide and once per account and region, so behind a flag.
    // Per "Using Transaction Search with AWS CloudFormation" (Amazon CloudWatch User Guide,
    // https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Transaction-Search-Cloudformation.html):
    // a Logs resource policy letting xray.amazonaws.com put events into `aws/spans` and
    // `/aws/application-signals/data`, then the TransactionSearchConfig that depends on it.
    if (props.transactionSearch) {
      const logGroupArn = (name: string) =>
        `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:${name}:*`;
      this.spansResourcePolicy = new logs.CfnResourcePolicy(this, 'TransactionSearchLogsPolicy', {
        policyName: 'TransactionSearchAccess',
        policyDocument: Fn.toJsonString({
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'TransactionSearchXRayAccess',
              Effect: 'Allow',
              Principal: { Service: 'xray.amazonaws.com' },
              Action: 'logs:PutLogEvents',
              Resource: TRANSACTION_SEARCH_LOG_GROUPS.map(logGroupArn),
              Condition: {
                ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:xray:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` },
                StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
              },
            },
          ],
        }),
      });
      this.transactionSearch = new xray.CfnTransactionSearchConfig(this, 'TransactionSearch', {
        indexingPercentage: props.transactionSearchIndexingPercentage ?? 1,
      });
      this.transactionSearch.node.addDependency(this.spansResourcePolicy);
    }

    // ---------------------------------------------------------------------------------------
    // The cluster (Express Mode would otherwise use the account's `default` cluster).
    this.cluster = new ecs.CfnCluster(this, 'Cluster', {
      clusterSettings: [{ name: 'containerInsights', value: 'disabled' }],
    });
    Validations.of(this.cluster).acknowledge({
      id: 'AwsSolutions-ECS4',
      reason:
        'Container Insights is left off to keep the idle cost down (it bills custom metrics per ' +
        'task); Express Mode already creates CloudWatch alarms and the traces go to X-Ray.',
    });

    const environment: Record<string, string> = {
      OTEL_SERVICE_NAME: SERVICE_NAME,
      OTEL_RESOURCE_ATTRIBUTES: `service.name=${SERVICE_NAME},cloud.platform=aws_ecs`,
      // The kit turns on its SigV4 exporter when the endpoint names X-Ray's OTLP endpoint.
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `https://xray.${Aws.REGION}.amazonaws.com/v1/traces`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      AWS_REGION: Aws.REGION,
      PORT: String(CONTAINER_PORT),
      ...DB_TLS_ENVIRONMENT,
      [JOBS_TOPIC_ARN_ENV]: this.jobs.topic.topicArn,
    };
    const secrets: Record<string, string> = {};
    if (secretsMode === 'runtime') {
      // ECS injects each secret's whole text (the RDS JSON, the key): the same names as the
      // App Runner stack, which the kit already expands.
      secrets.DB_SECRET = this.databaseSecret.secretArn;
      secrets.JWT_SECRET = this.jwtSecret.secretArn;
    } else {
      environment.DB_SECRET_NAME = this.databaseSecret.secretArn;
      environment.JWT_SECRET_NAME = this.jwtSecret.secretArn;
      environment.APPRUNNER_SECRETS = Fn.join('', ['JWT_SECRET=', this.jwtSecret.secretArn]);
    }

    this.service = new ecs.CfnExpressGatewayService(this, 'Service', {
      cluster: this.cluster.ref,
      infrastructureRoleArn: this.infrastructureRole.roleArn,
      executionRoleArn: this.executionRole.roleArn,
      taskRoleArn: this.taskRole.roleArn,
      healthCheckPath: HEALTH_CHECK_PATH,
      cpu: props.cpu ?? '256',
      memory: props.memory ?? '512',
      primaryContainer: {
        image: this.image.imageUri,
        containerPort: CONTAINER_PORT,
        environment: Object.entries(environment).map(([name, value]) => ({ name, value })),
        ...(Object.keys(secrets).length > 0
          ? { secrets: Object.entries(secrets).map(([name, valueFrom]) => ({ name, valueFrom })) }
          : {}),
        awsLogsConfiguration: { logGroup: this.logGroup.logGroupName, logStreamPrefix: SERVICE_NAME },
      },
      networkConfiguration: {
        subnets: this.vpc.selectSubnets(network.appSubnets).subnetIds,
        securityGroups: [this.serviceSecurityGroup.securityGroupId],
      },
      scalingTarget: {
        minTaskCount: 1,
        maxTaskCount: props.maxTasks ?? 2,
        autoScalingMetric: 'AVERAGE_CPU',
        autoScalingTargetValue: 60,
      },
    });
    // The roles' inline policies are part of the role resources; the execution role's grant on
    // the log group and the secrets orders the service after both. With Transaction Search in
    // the same stack, the service starts only once X-Ray accepts OTLP spans.
    if (this.transactionSearch) this.service.node.addDependency(this.transactionSearch);
    // The interface endpoints must exist before the first task pulls its image.
    for (const endpoint of Object.values(this.endpoints)) this.service.node.addDependency(endpoint);

    // SNS pushes the jobs to https://<Endpoint>/jobs/sns. `Endpoint` is the only top-level URL
    // attribute of AWS::ECS::ExpressGatewayService (the other copy sits in the
    // ActiveConfigurations list, out of Fn::GetAtt's reach); taken to be a bare host name like
    // App Runner's ServiceUrl (see the README: not verified without a deployment).
    this.jobs.subscribe(this.service.attrEndpoint, this.taskRole);

    // ---------------------------------------------------------------------------------------
    // Outputs: the endpoint, and where its traces are.
    const consoleBase = `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}`;
    new CfnOutput(this, 'ServiceEndpoint', {
      description: 'The users API (HTTPS, on an AWS-provided domain)',
      value: this.service.attrEndpoint,
    });
    new CfnOutput(this, 'ServiceArn', { value: this.service.attrServiceArn });
    new CfnOutput(this, 'TracesEndpoint', {
      description: 'Where the service sends its spans (OTLP/HTTP, SigV4)',
      value: environment.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    });
    new CfnOutput(this, 'TracesUrl', {
      description: 'X-Ray traces in the CloudWatch console; filter with TraceFilter',
      value: `${consoleBase}#xray:traces/query`,
    });
    new CfnOutput(this, 'TraceFilter', {
      description: 'X-Ray filter expression for this service\'s traces',
      value: `service("${SERVICE_NAME}")`,
    });
    new CfnOutput(this, 'TransactionSearchUrl', {
      description: 'CloudWatch Transaction Search (spans in aws/spans)',
      value: `${consoleBase}#application-signals:transaction-search`,
    });
    new CfnOutput(this, 'LogGroupName', { value: this.logGroup.logGroupName });
    new CfnOutput(this, 'DatabaseSecretArn', { value: this.databaseSecret.secretArn });
    new CfnOutput(this, 'JwtSecretArn', { value: this.jwtSecret.secretArn });
    new CfnOutput(this, 'JobsTopicArn', {
      description: 'The background jobs topic (the service publishes there; SNS pushes to /jobs/sns)',
      value: this.jobs.topic.topicArn,
    });
    new CfnOutput(this, 'JobsDeadLetterQueueUrl', {
      description: 'Job notifications SNS gave up delivering (kept 14 days)',
      value: this.jobs.deadLetterQueue.queueUrl,
    });
  }
}
