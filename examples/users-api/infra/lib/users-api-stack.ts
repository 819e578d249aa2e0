import {
  Aws,
  CfnOutput,
  Duration,
  Fn,
  IgnoreMode,
  RemovalPolicy,
  Stack,
  StackProps,
  Tags,
  Validations,
} from 'aws-cdk-lib';
import * as apprunner from 'aws-cdk-lib/aws-apprunner';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { DockerImageAsset, Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { DOCKERFILE, IMAGE_CONTEXT_EXCLUDES, repositoryRoot } from './paths';

/**
 * How the service receives its two secrets (the database credentials and the JWT signing key).
 *
 * - `runtime`: App Runner reads both secrets at deploy time and injects their text into
 *   `DB_SECRET` (the RDS-style JSON) and `JWT_SECRET` (the key). No Secrets Manager call at
 *   start-up; a rotated secret reaches the service only at its next deployment.
 * - `names`: the service gets `DB_SECRET_NAME` and `JWT_SECRET_NAME` (secret ARNs) and fetches
 *   the secrets itself at start-up through the kit's secrets module (over the VPC connector and
 *   the NAT gateway). `APPRUNNER_SECRETS=JWT_SECRET=<arn>` is set too, so the kit's generic
 *   mapping fills `JWT_SECRET` without service code. A restart picks up a rotated secret.
 *
 * The instance role is the same in both modes: App Runner reads runtime secrets with it.
 */
export type SecretsMode = 'runtime' | 'names';

export const SECRETS_MODES: readonly SecretsMode[] = ['runtime', 'names'];

/** The service name in traces and logs (`service.name`), and the X-Ray node name. */
export const SERVICE_NAME = 'users-api';

/** The port the container listens on; App Runner passes it to the container as `PORT`. */
export const CONTAINER_PORT = 8080;

/** The health check path of the users API (it must not touch the database: see the README). */
export const HEALTH_CHECK_PATH = '/healthz';

/**
 * The X-Ray write actions of the AWS managed policy `AWSXrayWriteOnlyAccess`: what App Runner's
 * managed OpenTelemetry collector needs to send segments and follow sampling rules. X-Ray has no
 * resource-level permissions for these actions, so they can only be granted on resource `*`.
 * (Sorted, as the CDK renders them with `@aws-cdk/aws-iam:minimizePolicies`.)
 */
export const XRAY_WRITE_ACTIONS: readonly string[] = [
  'xray:GetSamplingRules',
  'xray:GetSamplingStatisticSummaries',
  'xray:GetSamplingTargets',
  'xray:PutTelemetryRecords',
  'xray:PutTraceSegments',
];

/** What App Runner needs to pull the image from the CDK's container asset repository. */
export const ECR_PULL_ACTIONS: readonly string[] = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:DescribeImages',
  'ecr:GetDownloadUrlForLayer',
];

export interface UsersApiStackProps extends StackProps {
  /** How the service receives its secrets. @default 'runtime' */
  readonly secretsMode?: SecretsMode;
  /**
   * Aurora Serverless v2 minimum capacity in ACUs (0 to 256, in steps of 0.5). 0 turns on
   * auto-pause: the writer stops (compute billed at $0) after `dbAutoPauseAfter` without
   * connections and resumes on the next connection (about 15 s).
   * @default 0.5
   */
  readonly dbMinCapacity?: number;
  /** Aurora Serverless v2 maximum capacity in ACUs (1 to 256). @default 5 */
  readonly dbMaxCapacity?: number;
  /**
   * Idle time before an auto-paused writer pauses (5 minutes to 24 hours). Only with
   * `dbMinCapacity: 0`.
   * @default - Aurora's default, 5 minutes
   */
  readonly dbAutoPauseAfter?: Duration;
  /** Deletion protection of the Aurora cluster. @default false (so `cdk destroy` works) */
  readonly dbDeletionProtection?: boolean;
  /**
   * What `cdk destroy` does with the database: `SNAPSHOT` keeps a final snapshot (billed as
   * backup storage), `DESTROY` drops the data.
   * @default RemovalPolicy.SNAPSHOT
   */
  readonly dbRemovalPolicy?: RemovalPolicy;
  /** App Runner instance vCPU. @default '0.25 vCPU' */
  readonly cpu?: string;
  /** App Runner instance memory. @default '0.5 GB' */
  readonly memory?: string;
  /** App Runner auto scaling: most instances. @default 2 */
  readonly maxInstances?: number;
  /** App Runner auto scaling: concurrent requests per instance before scaling out. @default 100 */
  readonly maxConcurrency?: number;
  /**
   * The image build context (the repository root). @default - found by walking up from here
   */
  readonly imageContext?: string;
}

/**
 * The users API on AWS App Runner: VPC, Aurora PostgreSQL Serverless v2, two generated secrets,
 * the image built from `examples/users-api/Dockerfile`, and the App Runner service with its VPC
 * connector, X-Ray tracing and least-privilege roles.
 */
export class UsersApiStack extends Stack {
  readonly vpc: ec2.Vpc;
  readonly connectorSecurityGroup: ec2.SecurityGroup;
  readonly databaseSecurityGroup: ec2.SecurityGroup;
  readonly database: rds.DatabaseCluster;
  readonly databaseSecret: secretsmanager.ISecret;
  readonly jwtSecret: secretsmanager.Secret;
  readonly image: DockerImageAsset;
  readonly instanceRole: iam.Role;
  readonly accessRole: iam.Role;
  readonly vpcConnector: apprunner.CfnVpcConnector;
  readonly observability: apprunner.CfnObservabilityConfiguration;
  readonly autoScaling: apprunner.CfnAutoScalingConfiguration;
  readonly service: apprunner.CfnService;
  readonly secretsMode: SecretsMode;

  constructor(scope: Construct, id: string, props: UsersApiStackProps = {}) {
    super(scope, id, {
      description: 'apprunner-kit users API example: App Runner + Aurora Serverless v2, traced in X-Ray',
      ...props,
    });

    const secretsMode = props.secretsMode ?? 'runtime';
    if (!SECRETS_MODES.includes(secretsMode)) {
      throw new Error(`secretsMode must be one of ${SECRETS_MODES.join(', ')}, not ${String(secretsMode)}`);
    }
    this.secretsMode = secretsMode;
    const minCapacity = props.dbMinCapacity ?? 0.5;
    const maxCapacity = props.dbMaxCapacity ?? 5;
    if (props.dbAutoPauseAfter !== undefined && minCapacity !== 0) {
      throw new Error('dbAutoPauseAfter needs dbMinCapacity 0 (auto-pause happens only at 0 ACU)');
    }
    if (minCapacity > maxCapacity) {
      throw new Error(`dbMinCapacity (${minCapacity}) exceeds dbMaxCapacity (${maxCapacity})`);
    }
    Tags.of(this).add('project', 'apprunner-kit');
    Tags.of(this).add('service', SERVICE_NAME);

    // ---------------------------------------------------------------------------------------
    // Network: public subnets for the NAT gateway, private subnets with egress for the App
    // Runner VPC connector, isolated subnets for the database. Two AZs (Aurora needs a subnet
    // group spanning two), one NAT gateway (cost over availability: see the README).
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr('10.0.0.0/16'),
      maxAzs: 2,
      natGateways: 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 },
        { name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
    });
    Validations.of(this.vpc).acknowledge({
      id: 'AwsSolutions-VPC7',
      reason:
        'VPC flow logs are left out of this example to keep its idle cost down; the only traffic ' +
        'is App Runner egress to Aurora and AWS APIs. Add vpc.addFlowLog() for production.',
    });

    // Security groups: the connector's group may reach the database on 5432 and AWS APIs on
    // 443; the database's group accepts 5432 from the connector's group and nothing else.
    this.connectorSecurityGroup = new ec2.SecurityGroup(this, 'ConnectorSecurityGroup', {
      vpc: this.vpc,
      description: 'App Runner VPC connector of the users API (egress only)',
      allowAllOutbound: false,
    });
    this.connectorSecurityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS to AWS APIs (Secrets Manager) through the NAT gateway',
    );
    this.databaseSecurityGroup = new ec2.SecurityGroup(this, 'DatabaseSecurityGroup', {
      vpc: this.vpc,
      description: 'Aurora cluster of the users API (PostgreSQL from the App Runner connector only)',
      allowAllOutbound: false,
    });
    this.databaseSecurityGroup.connections.allowFrom(
      this.connectorSecurityGroup,
      ec2.Port.tcp(5432),
      'PostgreSQL from the App Runner VPC connector',
    );

    // ---------------------------------------------------------------------------------------
    // Database: Aurora PostgreSQL Serverless v2 through the L2 API, credentials generated into
    // Secrets Manager. The secret is CDK-generated (not RDS-managed) because the kit's RDS
    // expansion needs host, port and dbname in the JSON, which the attachment adds.
    this.database = new rds.DatabaseCluster(this, 'Database', {
      engine: rds.DatabaseClusterEngine.auroraPostgres({
        version: rds.AuroraPostgresEngineVersion.VER_16_13,
      }),
      writer: rds.ClusterInstance.serverlessV2('writer', {
        publiclyAccessible: false,
        autoMinorVersionUpgrade: true,
      }),
      serverlessV2MinCapacity: minCapacity,
      serverlessV2MaxCapacity: maxCapacity,
      ...(props.dbAutoPauseAfter ? { serverlessV2AutoPauseDuration: props.dbAutoPauseAfter } : {}),
      credentials: rds.Credentials.fromGeneratedSecret('users_api', {
        excludeCharacters: ' %+~`#$&*()|[]{}:;<>?!\'/@"\\',
      }),
      defaultDatabaseName: 'users',
      port: 5432,
      parameters: { 'rds.force_ssl': '1' },
      storageEncrypted: true,
      backup: { retention: Duration.days(7) },
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [this.databaseSecurityGroup],
      deletionProtection: props.dbDeletionProtection ?? false,
      removalPolicy: props.dbRemovalPolicy ?? RemovalPolicy.SNAPSHOT,
    });
    this.databaseSecret = this.database.secret!;
    Validations.of(this.database).acknowledge(
      {
        id: 'AwsSolutions-RDS6',
        reason:
          'The service authenticates with the generated password from Secrets Manager (what the ' +
          'kit reads); IAM database authentication would need token refresh in the pool.',
      },
      {
        id: 'AwsSolutions-RDS10',
        reason:
          'Deletion protection is a prop (dbDeletionProtection), off by default so that the ' +
          'example can be removed with cdk destroy; a final snapshot is kept by default.',
      },
    );
    // The generated secret (a child of the cluster); `cluster.secret` is its target attachment.
    Validations.of(this.database.node.findChild('Secret')).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'No automatic rotation: App Runner injects runtime secrets only at deployment and the kit ' +
        'reads named secrets at start-up, so a rotated password would break running instances ' +
        'until they are redeployed. Rotate by hand and redeploy (see the README).',
    });

    // JWT signing key: 64 random alphanumeric characters (about 380 bits), stored as plain text.
    this.jwtSecret = new secretsmanager.Secret(this, 'JwtSecret', {
      description: 'JWT signing key of the users API',
      generateSecretString: {
        passwordLength: 64,
        excludePunctuation: true,
        includeSpace: false,
      },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(this.jwtSecret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'No automatic rotation: the service reads the key once at start-up and rotating it would ' +
        'invalidate every issued login cookie; rotate by hand and redeploy.',
    });

    // ---------------------------------------------------------------------------------------
    // Image: built from the repository root with the users API's Dockerfile (cdk deploy builds
    // it locally with Docker and pushes it to the CDK's asset repository in ECR).
    this.image = new DockerImageAsset(this, 'Image', {
      directory: props.imageContext ?? repositoryRoot(),
      file: DOCKERFILE,
      exclude: [...IMAGE_CONTEXT_EXCLUDES],
      ignoreMode: IgnoreMode.DOCKER,
      platform: Platform.LINUX_AMD64,
    });

    // ---------------------------------------------------------------------------------------
    // Roles. Instance role (the running container and App Runner's managed collector): X-Ray
    // writes and reading exactly the two secrets. Access role (App Runner's build service):
    // pulling the image.
    this.instanceRole = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('tasks.apprunner.amazonaws.com'),
      description: 'users API on App Runner: X-Ray writes, its two secrets',
      inlinePolicies: {
        XRayWrite: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'XRayWriteOnly',
              actions: [...XRAY_WRITE_ACTIONS],
              // X-Ray defines no resource types for these actions: "*" is the only valid
              // resource (the same set as the AWS managed AWSXrayWriteOnlyAccess policy).
              resources: ['*'],
            }),
          ],
        }),
        ReadSecrets: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'ReadTheTwoSecrets',
              actions: ['secretsmanager:GetSecretValue'],
              resources: [this.databaseSecret.secretArn, this.jwtSecret.secretArn],
            }),
          ],
        }),
      },
    });
    Validations.of(this.instanceRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'X-Ray PutTraceSegments, PutTelemetryRecords and the GetSampling* actions support no ' +
        'resource-level permissions, so resource "*" is the only possible grant (the set of the ' +
        'AWS managed AWSXrayWriteOnlyAccess policy). The secrets grant names the two ARNs.',
    });

    this.accessRole = new iam.Role(this, 'AccessRole', {
      assumedBy: new iam.ServicePrincipal('build.apprunner.amazonaws.com'),
      description: 'App Runner pulls the users API image from the CDK asset repository',
      inlinePolicies: {
        EcrPull: new iam.PolicyDocument({
          statements: [
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
          ],
        }),
      },
    });
    Validations.of(this.accessRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ecr:GetAuthorizationToken supports no resource-level permissions; the pull actions are ' +
        'limited to the asset repository.',
    });

    // ---------------------------------------------------------------------------------------
    // App Runner (L1 constructs of aws-cdk-lib, stable; the L2 is still an alpha module).
    this.vpcConnector = new apprunner.CfnVpcConnector(this, 'VpcConnector', {
      subnets: this.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds,
      securityGroups: [this.connectorSecurityGroup.securityGroupId],
    });

    this.observability = new apprunner.CfnObservabilityConfiguration(this, 'Observability', {
      traceConfiguration: { vendor: 'AWSXRAY' },
    });

    this.autoScaling = new apprunner.CfnAutoScalingConfiguration(this, 'AutoScaling', {
      minSize: 1,
      maxSize: props.maxInstances ?? 2,
      maxConcurrency: props.maxConcurrency ?? 100,
    });

    const environment: Record<string, string> = {
      OTEL_SERVICE_NAME: SERVICE_NAME,
      OTEL_RESOURCE_ATTRIBUTES: `service.name=${SERVICE_NAME},cloud.platform=aws_app_runner`,
      AWS_REGION: Aws.REGION,
    };
    const secrets: Record<string, string> = {};
    if (secretsMode === 'runtime') {
      secrets.DB_SECRET = this.databaseSecret.secretArn;
      secrets.JWT_SECRET = this.jwtSecret.secretArn;
    } else {
      environment.DB_SECRET_NAME = this.databaseSecret.secretArn;
      environment.JWT_SECRET_NAME = this.jwtSecret.secretArn;
      environment.APPRUNNER_SECRETS = Fn.join('', ['JWT_SECRET=', this.jwtSecret.secretArn]);
    }
    const pairs = (vars: Record<string, string>) =>
      Object.entries(vars).map(([name, value]) => ({ name, value }));

    this.service = new apprunner.CfnService(this, 'Service', {
      sourceConfiguration: {
        autoDeploymentsEnabled: false,
        authenticationConfiguration: { accessRoleArn: this.accessRole.roleArn },
        imageRepository: {
          imageRepositoryType: 'ECR',
          imageIdentifier: this.image.imageUri,
          imageConfiguration: {
            port: String(CONTAINER_PORT),
            runtimeEnvironmentVariables: pairs(environment),
            ...(Object.keys(secrets).length > 0
              ? { runtimeEnvironmentSecrets: pairs(secrets) }
              : {}),
          },
        },
      },
      instanceConfiguration: {
        cpu: props.cpu ?? '0.25 vCPU',
        memory: props.memory ?? '0.5 GB',
        instanceRoleArn: this.instanceRole.roleArn,
      },
      networkConfiguration: {
        egressConfiguration: { egressType: 'VPC', vpcConnectorArn: this.vpcConnector.attrVpcConnectorArn },
        ingressConfiguration: { isPubliclyAccessible: true },
        ipAddressType: 'IPV4',
      },
      healthCheckConfiguration: {
        protocol: 'HTTP',
        path: HEALTH_CHECK_PATH,
        interval: 10,
        timeout: 5,
        healthyThreshold: 1,
        unhealthyThreshold: 5,
      },
      observabilityConfiguration: {
        observabilityEnabled: true,
        observabilityConfigurationArn: this.observability.attrObservabilityConfigurationArn,
      },
      autoScalingConfigurationArn: this.autoScaling.attrAutoScalingConfigurationArn,
    });
    // No explicit dependency on the database: the secret references already order the service
    // after the cluster, and the roles' inline policies are part of the role resources, so they
    // exist before App Runner first pulls the image or reads a secret.

    // ---------------------------------------------------------------------------------------
    // Outputs: the URL, and where its traces are.
    const consoleBase = `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}`;
    new CfnOutput(this, 'ServiceUrl', {
      description: 'The users API',
      value: `https://${this.service.attrServiceUrl}`,
    });
    new CfnOutput(this, 'ServiceArn', { value: this.service.attrServiceArn });
    new CfnOutput(this, 'TracesUrl', {
      description: 'X-Ray traces in the CloudWatch console; filter with TraceFilter',
      value: `${consoleBase}#xray:traces/query`,
    });
    new CfnOutput(this, 'TraceFilter', {
      description: 'X-Ray filter expression for this service\'s traces',
      value: `service("${SERVICE_NAME}")`,
    });
    new CfnOutput(this, 'TraceByIdUrlPrefix', {
      description:
        'Append a trace id (the Root=1-xxxxxxxx-... part of an X-Amzn-Trace-Id response header) to open that trace',
      value: `${consoleBase}#xray:traces/`,
    });
    new CfnOutput(this, 'ServiceMapUrl', {
      description: 'X-Ray trace map in the CloudWatch console',
      value: `${consoleBase}#xray:service-map/map`,
    });
    new CfnOutput(this, 'DatabaseSecretArn', { value: this.databaseSecret.secretArn });
    new CfnOutput(this, 'JwtSecretArn', { value: this.jwtSecret.secretArn });
  }
}

