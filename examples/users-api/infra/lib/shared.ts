// The pieces both stacks share: network, Aurora Serverless v2 with its generated secret, the JWT
// signing key and the image. Each builder creates its constructs directly in the stack it is
// given, under the same ids the App Runner stack always used, so that stack's template (logical
// ids, properties and the `aws:cdk:path` metadata) is byte for byte what it was before these
// were shared. A wrapping Construct would have moved every path under a new scope. The
// background jobs (`Jobs`, added later) are new, so they do live under one construct.
import { Duration, IgnoreMode, RemovalPolicy, Stack, Tags, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { DockerImageAsset, Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DOCKERFILE, IMAGE_CONTEXT_EXCLUDES, repositoryRoot } from './paths';

/**
 * Where the image keeps the RDS CA bundle (examples/users-api/Dockerfile downloads it from
 * https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem and checks its pinned hash).
 */
export const RDS_CA_BUNDLE_PATH = '/etc/ssl/certs/rds-global-bundle.pem';

/**
 * Verified TLS to Aurora, for both stacks: the kit's `DB_SSL_MODE` and `DB_SSL_ROOT_CERT` (they
 * apply to the `DATABASE_URL` the RDS secret expands into as well). `verify-full` checks that
 * the certificate chains to the RDS CAs and names the cluster endpoint the service connects to.
 */
export const DB_TLS_ENVIRONMENT: Readonly<Record<string, string>> = {
  DB_SSL_MODE: 'verify-full',
  DB_SSL_ROOT_CERT: RDS_CA_BUNDLE_PATH,
};

/** The subnet group the service's network interfaces live in (App Runner connector or ECS tasks). */
export const APP_SUBNET_GROUP = 'app';
/** The subnet group of the database. */
export const DB_SUBNET_GROUP = 'db';

/** The Aurora Serverless v2 settings both stacks take from context. */
export interface DatabaseProps {
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
}

/** The AWS APIs an interface endpoint can stand in for, by short name. */
export const ENDPOINT_SERVICES = {
  secretsmanager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
  xray: ec2.InterfaceVpcEndpointAwsService.XRAY,
  logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  'ecr.api': ec2.InterfaceVpcEndpointAwsService.ECR,
  'ecr.dkr': ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
  // The service publishes its background jobs (SNS calls KMS for the topic's key itself).
  sns: ec2.InterfaceVpcEndpointAwsService.SNS,
} as const;

export type EndpointService = keyof typeof ENDPOINT_SERVICES;

export interface NetworkOptions {
  /**
   * Interface endpoints instead of the NAT gateway: the app subnets become isolated (no route
   * out) and reach the listed AWS APIs through endpoints in both AZs.
   */
  readonly vpcEndpoints: boolean;
  /** The interface endpoints to create when `vpcEndpoints` is on. */
  readonly endpointServices: readonly EndpointService[];
  /** Also an S3 gateway endpoint (free; ECR serves image layers from S3). */
  readonly s3GatewayEndpoint: boolean;
  /** Why flow logs are left out (the AwsSolutions-VPC7 acknowledgment). */
  readonly flowLogsReason: string;
  /** The construct id and description of the service's security group. */
  readonly appSecurityGroupId: string;
  readonly appSecurityGroupDescription: string;
  /** The description of its 443 egress rule, with and without endpoints. */
  readonly httpsEgressDescription: string;
  readonly httpsEgressDescriptionWithEndpoints: string;
}

export interface Network {
  readonly vpc: ec2.Vpc;
  /** The service's security group: egress only, 443 out and 5432 to the database. */
  readonly appSecurityGroup: ec2.SecurityGroup;
  /** The subnets the service runs in. */
  readonly appSubnets: ec2.SubnetSelection;
  /** The interface endpoints by service (empty without `vpcEndpoints`). */
  readonly endpoints: Partial<Record<EndpointService, ec2.InterfaceVpcEndpoint>>;
  /** The endpoints' security group: 443 from `appSecurityGroup` only (with `vpcEndpoints`). */
  readonly endpointSecurityGroup?: ec2.SecurityGroup;
}

/**
 * VPC `10.0.0.0/16` in two AZs (Aurora needs a subnet group spanning two): public subnets,
 * app subnets, isolated database subnets; one NAT gateway (cost over availability), or none
 * and interface endpoints for the AWS APIs the service calls.
 */
export function addNetwork(stack: Stack, options: NetworkOptions): Network {
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    ipAddresses: ec2.IpAddresses.cidr('10.0.0.0/16'),
    maxAzs: 2,
    natGateways: options.vpcEndpoints ? 0 : 1,
    subnetConfiguration: [
      { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
      {
        name: APP_SUBNET_GROUP,
        subnetType: options.vpcEndpoints ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PRIVATE_WITH_EGRESS,
        cidrMask: 24,
      },
      { name: DB_SUBNET_GROUP, subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
    ],
  });
  Validations.of(vpc).acknowledge({ id: 'AwsSolutions-VPC7', reason: options.flowLogsReason });

  const appSecurityGroup = new ec2.SecurityGroup(stack, options.appSecurityGroupId, {
    vpc,
    description: options.appSecurityGroupDescription,
    allowAllOutbound: false,
  });
  appSecurityGroup.addEgressRule(
    ec2.Peer.anyIpv4(),
    ec2.Port.tcp(443),
    options.vpcEndpoints ? options.httpsEgressDescriptionWithEndpoints : options.httpsEgressDescription,
  );

  const appSubnets: ec2.SubnetSelection = { subnetGroupName: APP_SUBNET_GROUP };
  const endpoints: Partial<Record<EndpointService, ec2.InterfaceVpcEndpoint>> = {};
  let endpointSecurityGroup: ec2.SecurityGroup | undefined;
  if (options.vpcEndpoints) {
    // The endpoints' network interfaces accept HTTPS from the service's group and nothing else.
    endpointSecurityGroup = new ec2.SecurityGroup(stack, 'EndpointSecurityGroup', {
      vpc,
      description: 'VPC interface endpoints of the users API (HTTPS from the service only)',
      allowAllOutbound: false,
    });
    endpointSecurityGroup.addIngressRule(appSecurityGroup, ec2.Port.tcp(443), 'HTTPS from the service');
    for (const name of options.endpointServices) {
      // One endpoint network interface per AZ in the app subnets; private DNS makes the
      // regional API name (e.g. xray.<region>.amazonaws.com) resolve to it.
      endpoints[name] = vpc.addInterfaceEndpoint(endpointId(name), {
        service: ENDPOINT_SERVICES[name],
        subnets: appSubnets,
        privateDnsEnabled: true,
        securityGroups: [endpointSecurityGroup],
        open: false,
      });
    }
    if (options.s3GatewayEndpoint) {
      vpc.addGatewayEndpoint('S3Endpoint', {
        service: ec2.GatewayVpcEndpointAwsService.S3,
        subnets: [appSubnets],
      });
    }
  }
  return { vpc, appSecurityGroup, appSubnets, endpoints, endpointSecurityGroup };
}

function endpointId(name: EndpointService): string {
  const camel = name
    .split(/[^a-z0-9]/i)
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
  return `${camel}Endpoint`;
}

export interface DatabaseOptions extends DatabaseProps {
  readonly vpc: ec2.Vpc;
  /** The service's security group, the only one let in on 5432. */
  readonly appSecurityGroup: ec2.SecurityGroup;
  readonly securityGroupDescription: string;
  /** The description of the 5432 rule (ingress and the matching egress). */
  readonly ingressDescription: string;
  /** Why the generated database secret is not rotated (the AwsSolutions-SMG4 acknowledgment). */
  readonly rotationReason: string;
}

export interface Database {
  readonly securityGroup: ec2.SecurityGroup;
  readonly cluster: rds.DatabaseCluster;
  /** The generated credentials (RDS-style JSON: username, password, host, port, dbname, engine). */
  readonly secret: secretsmanager.ISecret;
}

/** Checks the Serverless v2 capacity settings; returns min and max with their defaults. */
export function databaseCapacity(props: DatabaseProps): { min: number; max: number } {
  const min = props.dbMinCapacity ?? 0.5;
  const max = props.dbMaxCapacity ?? 5;
  if (props.dbAutoPauseAfter !== undefined && min !== 0) {
    throw new Error('dbAutoPauseAfter needs dbMinCapacity 0 (auto-pause happens only at 0 ACU)');
  }
  if (min > max) {
    throw new Error(`dbMinCapacity (${min}) exceeds dbMaxCapacity (${max})`);
  }
  return { min, max };
}

/**
 * What every stack of the example starts with: the secrets mode checked against `modes`, the
 * database capacity checked, and the project's tags. Returns the secrets mode.
 */
export function stackPrelude<M extends string>(
  stack: Stack,
  props: DatabaseProps & { secretsMode?: M },
  modes: readonly M[],
  serviceName: string,
): M {
  const secretsMode = props.secretsMode ?? modes[0];
  if (!modes.includes(secretsMode)) {
    throw new Error(`secretsMode must be one of ${modes.join(', ')}, not ${String(secretsMode)}`);
  }
  databaseCapacity(props);
  Tags.of(stack).add('project', 'apprunner-kit');
  Tags.of(stack).add('service', serviceName);
  return secretsMode;
}

/**
 * The database's security group (5432 from the service's group only, nothing else in or out)
 * and Aurora PostgreSQL Serverless v2 through the L2 API, credentials generated into Secrets
 * Manager. The secret is CDK-generated (not RDS-managed) because the kit's RDS expansion needs
 * host, port and dbname in the JSON, which the attachment adds.
 */
export function addDatabase(stack: Stack, options: DatabaseOptions): Database {
  const { min, max } = databaseCapacity(options);
  const securityGroup = new ec2.SecurityGroup(stack, 'DatabaseSecurityGroup', {
    vpc: options.vpc,
    description: options.securityGroupDescription,
    allowAllOutbound: false,
  });
  securityGroup.connections.allowFrom(options.appSecurityGroup, ec2.Port.tcp(5432), options.ingressDescription);

  const cluster = new rds.DatabaseCluster(stack, 'Database', {
    engine: rds.DatabaseClusterEngine.auroraPostgres({
      version: rds.AuroraPostgresEngineVersion.VER_16_13,
    }),
    writer: rds.ClusterInstance.serverlessV2('writer', {
      publiclyAccessible: false,
      autoMinorVersionUpgrade: true,
    }),
    serverlessV2MinCapacity: min,
    serverlessV2MaxCapacity: max,
    ...(options.dbAutoPauseAfter ? { serverlessV2AutoPauseDuration: options.dbAutoPauseAfter } : {}),
    credentials: rds.Credentials.fromGeneratedSecret('users_api', {
      excludeCharacters: ' %+~`#$&*()|[]{}:;<>?!\'/@"\\',
    }),
    defaultDatabaseName: 'users',
    port: 5432,
    parameters: { 'rds.force_ssl': '1' },
    storageEncrypted: true,
    backup: { retention: Duration.days(7) },
    vpc: options.vpc,
    vpcSubnets: { subnetGroupName: DB_SUBNET_GROUP },
    securityGroups: [securityGroup],
    deletionProtection: options.dbDeletionProtection ?? false,
    removalPolicy: options.dbRemovalPolicy ?? RemovalPolicy.SNAPSHOT,
  });
  Validations.of(cluster).acknowledge(
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
  Validations.of(cluster.node.findChild('Secret')).acknowledge({
    id: 'AwsSolutions-SMG4',
    reason: options.rotationReason,
  });
  return { securityGroup, cluster, secret: cluster.secret! };
}

/** The JWT signing key: 64 random alphanumeric characters (about 380 bits), as plain text. */
export function addJwtSecret(stack: Stack): secretsmanager.Secret {
  const secret = new secretsmanager.Secret(stack, 'JwtSecret', {
    description: 'JWT signing key of the users API',
    generateSecretString: {
      passwordLength: 64,
      excludePunctuation: true,
      includeSpace: false,
    },
    removalPolicy: RemovalPolicy.DESTROY,
  });
  Validations.of(secret).acknowledge({
    id: 'AwsSolutions-SMG4',
    reason:
      'No automatic rotation: the service reads the key once at start-up and rotating it would ' +
      'invalidate every issued login cookie; rotate by hand and redeploy.',
  });
  return secret;
}

/**
 * The image, built from the repository root with the users API's Dockerfile (`cdk deploy`
 * builds it locally with Docker and pushes it to the CDK's asset repository in ECR). Both
 * stacks build the same context with the same options, so they share one asset hash and one
 * image.
 */
export function addImage(stack: Stack, imageContext?: string): DockerImageAsset {
  return new DockerImageAsset(stack, 'Image', {
    directory: imageContext ?? repositoryRoot(),
    file: DOCKERFILE,
    exclude: [...IMAGE_CONTEXT_EXCLUDES],
    ignoreMode: IgnoreMode.DOCKER,
    platform: Platform.LINUX_AMD64,
  });
}

// ---------------------------------------------------------------------------------------------
// Background jobs over SNS HTTPS push (issue 22). App Runner and ECS Express run the service only
// while HTTP requests arrive, so a job is an SNS notification the service publishes to its own
// topic and SNS pushes back to it as an HTTPS POST on JOBS_PATH.

/** Where SNS posts the job notifications (and the subscription confirmation), on the service's URL. */
export const JOBS_PATH = '/jobs/sns';

/** The environment variable that gives the service its topic's ARN (it publishes there and accepts only it). */
export const JOBS_TOPIC_ARN_ENV = 'APPRUNNER_JOBS_TOPIC_ARN';

/**
 * The service rejects a notification whose `Timestamp` (the publish time, which SNS keeps across
 * retries) is older than this, so every delivery attempt has to start before it.
 */
export const JOBS_MAX_MESSAGE_AGE_SECONDS = 3600;

/**
 * The longest one delivery attempt can take, counted into the retry span: App Runner's request
 * timeout (120 s), which the service keeps its job budget under. (SNS may give up on an attempt
 * sooner; a shorter attempt only shortens the span.)
 */
export const JOBS_ATTEMPT_SECONDS = 120;

/**
 * The subscription's delivery policy: 10 retries after the first attempt, 2 at 30 s, 5 backing off
 * from 30 s towards 240 s, 3 at 240 s, at most 5 deliveries a second. Its worst-case span is
 * `jobsRetrySpanSeconds` = 3300 s (see the README), under the service's one-hour limit.
 */
export const JOBS_DELIVERY_POLICY: sns.DeliveryPolicy = {
  healthyRetryPolicy: {
    numRetries: 10,
    numNoDelayRetries: 0,
    minDelayTarget: Duration.seconds(30),
    numMinDelayRetries: 2,
    maxDelayTarget: Duration.seconds(240),
    numMaxDelayRetries: 3,
    backoffFunction: sns.BackoffFunction.EXPONENTIAL,
  },
  throttlePolicy: { maxReceivesPerSecond: 5 },
};

/**
 * An upper bound, in seconds, on the time from a message's publication to the end of its last
 * delivery attempt under `policy`: every delay at most `maxDelayTarget` outside the immediate and
 * pre-backoff phases (whatever the backoff function), plus `attemptSeconds` for each of the
 * `numRetries + 1` attempts. SNS's own defaults (3 retries, 20 s) apply to what is not set.
 */
export function jobsRetrySpanSeconds(policy: sns.DeliveryPolicy, attemptSeconds = JOBS_ATTEMPT_SECONDS): number {
  const p = policy.healthyRetryPolicy ?? {};
  const retries = p.numRetries ?? 3;
  const noDelay = p.numNoDelayRetries ?? 0;
  const minDelay = p.numMinDelayRetries ?? 0;
  const maxDelay = p.numMaxDelayRetries ?? 0;
  const backoff = retries - noDelay - minDelay - maxDelay;
  if (backoff < 0) throw new Error('the delivery policy has more phase retries than numRetries');
  const min = p.minDelayTarget?.toSeconds() ?? 20;
  const max = p.maxDelayTarget?.toSeconds() ?? 20;
  return minDelay * min + (backoff + maxDelay) * max + (retries + 1) * attemptSeconds;
}

/**
 * The jobs topic of one service: an SNS topic encrypted with its own KMS key (rotated yearly),
 * TLS-only, on which only the service's runtime role may publish; an HTTPS subscription of the
 * service's `JOBS_PATH` with `JOBS_DELIVERY_POLICY`; and an SQS dead-letter queue (SQS-managed
 * encryption, TLS-only, 14 days) for the notifications SNS gives up on.
 *
 * Created before the runtime role (whose inline policy takes `publishStatements()`), subscribed
 * once the service exists (`subscribe`), so the template has no cycle: topic ← role ← service ←
 * subscription, and the topic policy after the role.
 */
export class Jobs extends Construct {
  readonly key: kms.Key;
  readonly topic: sns.Topic;
  readonly deadLetterQueue: sqs.Queue;
  private sub?: sns.Subscription;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    if (jobsRetrySpanSeconds(JOBS_DELIVERY_POLICY) >= JOBS_MAX_MESSAGE_AGE_SECONDS) {
      throw new Error('the jobs delivery policy can outlast the service\'s message age limit');
    }
    this.key = new kms.Key(this, 'Key', {
      description: 'users API background jobs: SNS topic encryption',
      enableKeyRotation: true,
      // Nothing outlives the stack encrypted under it (SNS keeps no messages; the dead-letter
      // queue uses SQS-managed keys), and a retained key would bill $1/month for ever.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'users API background jobs',
      masterKey: this.key,
      enforceSSL: true,
      // SHA256 signatures (SignatureVersion 2) instead of SHA1.
      signatureVersion: '2',
    });
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself a dead-letter queue: the RedrivePolicy of the jobs topic\'s HTTPS ' +
        'subscription names it, which the rule does not look at (it only checks SQS queues and ' +
        'Lambda functions). A dead-letter queue has no dead-letter queue of its own.',
    });
  }

  /** What the publishing role needs: sns:Publish on the topic, and its key to encrypt the message. */
  publishStatements(): iam.PolicyStatement[] {
    return [
      new iam.PolicyStatement({
        sid: 'PublishJobs',
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
      }),
      new iam.PolicyStatement({
        sid: 'EncryptJobs',
        // What SNS calls with the publisher's credentials on an encrypted topic.
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [this.key.keyArn],
      }),
    ];
  }

  /**
   * Subscribes `https://<serviceHost>/jobs/sns` (the host a CloudFormation attribute of the
   * service gives) and lets `publisher`, and no one else, publish.
   */
  subscribe(serviceHost: string, publisher: iam.IRole): sns.Subscription {
    if (this.sub) throw new Error('the jobs topic is already subscribed');
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ServicePublishes',
        principals: [new iam.ArnPrincipal(publisher.roleArn)],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
      }),
    );
    // Same-account principals need no resource policy to publish, so "only the service" takes a
    // deny for every other principal.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'NoOtherPublisher',
        effect: iam.Effect.DENY,
        principals: [new iam.StarPrincipal()],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': publisher.roleArn } },
      }),
    );
    this.sub = new sns.Subscription(this, 'Subscription', {
      topic: this.topic,
      protocol: sns.SubscriptionProtocol.HTTPS,
      endpoint: `https://${serviceHost}${JOBS_PATH}`,
      deliveryPolicy: JOBS_DELIVERY_POLICY,
      deadLetterQueue: this.deadLetterQueue,
    });
    return this.sub;
  }

  /** The HTTPS subscription (after `subscribe`). */
  get subscription(): sns.Subscription {
    if (!this.sub) throw new Error('the jobs topic is not subscribed yet');
    return this.sub;
  }
}
