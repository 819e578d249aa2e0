import { Aws, CfnOutput, Fn, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as apprunner from 'aws-cdk-lib/aws-apprunner';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { DockerImageAsset } from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
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

/**
 * The interface endpoints of the App Runner stack with `vpcEndpoints`: only what the service
 * itself calls through the VPC connector. App Runner pulls the image and ships the logs outside
 * the VPC, so ECR and CloudWatch Logs endpoints would serve nothing here.
 */
export const APP_RUNNER_ENDPOINT_SERVICES: readonly EndpointService[] = ['secretsmanager', 'xray', 'sns'];

export interface UsersApiStackProps extends StackProps, DatabaseProps {
  /** How the service receives its secrets. @default 'runtime' */
  readonly secretsMode?: SecretsMode;
  /**
   * VPC interface endpoints (Secrets Manager, X-Ray, SNS) instead of the NAT gateway.
   * @default false
   */
  readonly vpcEndpoints?: boolean;
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
  /** The interface endpoints (empty unless `vpcEndpoints`). */
  readonly endpoints: Partial<Record<EndpointService, ec2.InterfaceVpcEndpoint>>;
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
  /** The background jobs: SNS topic, its HTTPS subscription of the service, the dead-letter queue. */
  readonly jobs: Jobs;
  readonly secretsMode: SecretsMode;

  constructor(scope: Construct, id: string, props: UsersApiStackProps = {}) {
    super(scope, id, {
      description: 'apprunner-kit users API example: App Runner + Aurora Serverless v2, traced in X-Ray',
      ...props,
    });

    const secretsMode = stackPrelude(this, props, SECRETS_MODES, SERVICE_NAME);
    this.secretsMode = secretsMode;

    // ---------------------------------------------------------------------------------------
    // Network, database, secrets and image: shared with the ECS Express stack (lib/shared.ts).
    // The connector's group may reach the database on 5432 and AWS APIs on 443; the database's
    // group accepts 5432 from the connector's group and nothing else.
    const network = addNetwork(this, {
      vpcEndpoints: props.vpcEndpoints ?? false,
      endpointServices: APP_RUNNER_ENDPOINT_SERVICES,
      s3GatewayEndpoint: false,
      flowLogsReason:
        'VPC flow logs are left out of this example to keep its idle cost down; the only traffic is ' +
        'App Runner egress to Aurora and AWS APIs. Add vpc.addFlowLog() for production.',
      appSecurityGroupId: 'ConnectorSecurityGroup',
      appSecurityGroupDescription: 'App Runner VPC connector of the users API (egress only)',
      httpsEgressDescription: 'HTTPS to AWS APIs (Secrets Manager, SNS) through the NAT gateway',
      httpsEgressDescriptionWithEndpoints: 'HTTPS to AWS APIs (Secrets Manager, X-Ray, SNS) through VPC interface endpoints',
    });
    this.vpc = network.vpc;
    this.connectorSecurityGroup = network.appSecurityGroup;
    this.endpoints = network.endpoints;

    const database = addDatabase(this, {
      ...props,
      vpc: this.vpc,
      appSecurityGroup: this.connectorSecurityGroup,
      securityGroupDescription: 'Aurora cluster of the users API (PostgreSQL from the App Runner connector only)',
      ingressDescription: 'PostgreSQL from the App Runner VPC connector',
      rotationReason:
        'No automatic rotation: App Runner injects runtime secrets only at deployment and the kit ' +
        'reads named secrets at start-up, so a rotated password would break running instances ' +
        'until they are redeployed. Rotate by hand and redeploy (see the README).',
    });
    this.databaseSecurityGroup = database.securityGroup;
    this.database = database.cluster;
    this.databaseSecret = database.secret;
    this.jwtSecret = addJwtSecret(this);
    this.image = addImage(this, props.imageContext);

    // Background jobs (lib/shared.ts): the topic and its dead-letter queue now, the service's
    // subscription once the service exists.
    this.jobs = new Jobs(this, 'Jobs');

    // ---------------------------------------------------------------------------------------
    // Roles. Instance role (the running container and App Runner's managed collector): X-Ray
    // writes, reading exactly the two secrets, publishing to the jobs topic. Access role (App
    // Runner's build service): pulling the image.
    this.instanceRole = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('tasks.apprunner.amazonaws.com'),
      description: 'users API on App Runner: X-Ray writes, its two secrets, publishing jobs',
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
        PublishJobs: new iam.PolicyDocument({ statements: this.jobs.publishStatements() }),
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
      subnets: this.vpc.selectSubnets(network.appSubnets).subnetIds,
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
      ...DB_TLS_ENVIRONMENT,
      [JOBS_TOPIC_ARN_ENV]: this.jobs.topic.topicArn,
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

    // SNS pushes the jobs to https://<ServiceUrl>/jobs/sns (ServiceUrl is the bare host name).
    this.jobs.subscribe(this.service.attrServiceUrl, this.instanceRole);

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

