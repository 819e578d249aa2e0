import { App, AppProps, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { UsersApiEcsStack, UsersApiEcsStackProps } from './ecs-express-stack';
import { SECRETS_MODES, SecretsMode, UsersApiStack, UsersApiStackProps } from './users-api-stack';

/** The App Runner stack's name in CloudFormation (and in `cdk deploy UsersApi`). */
export const STACK_NAME = 'UsersApi';

/** The ECS Express Mode stack's name (`cdk deploy UsersApiEcs`). */
export const ECS_STACK_NAME = 'UsersApiEcs';

/** The deployment targets, as `users-api:stacks` names them. */
export const TARGETS = ['apprunner', 'ecs'] as const;
export type Target = (typeof TARGETS)[number];

/** Context keys (`cdk.json` or `cdk deploy -c users-api:secretsMode=names`). */
export const CONTEXT = {
  secretsMode: 'users-api:secretsMode',
  dbMinCapacity: 'users-api:dbMinCapacity',
  dbMaxCapacity: 'users-api:dbMaxCapacity',
  dbAutoPauseMinutes: 'users-api:dbAutoPauseMinutes',
  dbDeletionProtection: 'users-api:dbDeletionProtection',
  dbDestroyOnDelete: 'users-api:dbDestroyOnDelete',
  maxInstances: 'users-api:maxInstances',
  /** ECS: most tasks. */
  maxTasks: 'users-api:maxTasks',
  /** Both stacks: VPC interface endpoints instead of the NAT gateway (true/false, default false). */
  vpcEndpoints: 'users-api:vpcEndpoints',
  /** ECS: create the account-wide Transaction Search configuration (true/false, default false). */
  transactionSearch: 'users-api:transactionSearch',
  /** Which stacks the app holds: `apprunner,ecs` (the default), `apprunner` or `ecs`. */
  stacks: 'users-api:stacks',
  account: 'users-api:account',
  region: 'users-api:region',
} as const;

/**
 * The recommended feature flags that touch this stack's resources, set in code rather than in
 * cdk.json so that the tests (which build the app in-process) synthesize exactly what
 * `cdk synth` does. `@aws-cdk/aws-ec2:restrictDefaultSecurityGroup` is left off on purpose: it
 * adds a Lambda-backed custom resource, and nothing in this stack uses the default group.
 */
export const FEATURE_FLAGS: Readonly<Record<string, unknown>> = {
  '@aws-cdk/aws-iam:minimizePolicies': true,
  '@aws-cdk/aws-rds:auroraClusterChangeScopeOfInstanceParameterGroupWithEachParameters': true,
  '@aws-cdk/aws-rds:preventRenderingDeprecatedCredentials': true,
  '@aws-cdk/aws-secretsmanager:useAttachedSecretResourcePolicyForSecretTargetAttachments': true,
  '@aws-cdk/core:checkSecretUsage': true,
  '@aws-cdk/core:enablePartitionLiterals': true,
  '@aws-cdk/core:target-partitions': ['aws', 'aws-cn'],
  '@aws-cdk/core:validateSnapshotRemovalPolicy': true,
};

export interface BuiltApp {
  readonly app: App;
  /** The App Runner stack (absent when `users-api:stacks` leaves it out). */
  readonly stack: UsersApiStack;
  /** The ECS Express Mode stack (absent when `users-api:stacks` leaves it out). */
  readonly ecsStack?: UsersApiEcsStack;
}

/**
 * Builds the CDK app: the `UsersApi` stack (App Runner) and the `UsersApiEcs` stack (ECS Express
 * Mode), configured from context (overridable by `props` and `ecsProps`), with cdk-nag's
 * AwsSolutions pack registered as a validation plugin, so that `cdk synth` fails on any finding
 * that is not acknowledged with a reason in code. `users-api:stacks` can leave either out.
 *
 * The stacks are environment-agnostic unless both `users-api:account` and `users-api:region` are
 * given: they deploy to the account and region of the AWS credentials `cdk deploy` runs with,
 * and synth needs neither credentials nor network (no lookups).
 */
export function buildApp(
  appProps: AppProps = {},
  props: UsersApiStackProps = {},
  ecsProps: UsersApiEcsStackProps = {},
): BuiltApp {
  const app = new App({ ...appProps, context: { ...FEATURE_FLAGS, ...appProps.context } });
  const ctx = (key: string): unknown => app.node.tryGetContext(key);

  const account = optionalString(ctx(CONTEXT.account));
  const region = optionalString(ctx(CONTEXT.region));
  if ((account === undefined) !== (region === undefined)) {
    throw new Error(`give both ${CONTEXT.account} and ${CONTEXT.region}, or neither`);
  }
  const autoPauseMinutes = optionalNumber(CONTEXT.dbAutoPauseMinutes, ctx(CONTEXT.dbAutoPauseMinutes));
  const fromContext: UsersApiStackProps = {
    ...(account && region ? { env: { account, region } } : {}),
    secretsMode: secretsModeOf(ctx(CONTEXT.secretsMode)),
    dbMinCapacity: optionalNumber(CONTEXT.dbMinCapacity, ctx(CONTEXT.dbMinCapacity)),
    dbMaxCapacity: optionalNumber(CONTEXT.dbMaxCapacity, ctx(CONTEXT.dbMaxCapacity)),
    dbAutoPauseAfter: autoPauseMinutes === undefined ? undefined : Duration.minutes(autoPauseMinutes),
    dbDeletionProtection: optionalBoolean(CONTEXT.dbDeletionProtection, ctx(CONTEXT.dbDeletionProtection)),
    dbRemovalPolicy: optionalBoolean(CONTEXT.dbDestroyOnDelete, ctx(CONTEXT.dbDestroyOnDelete))
      ? RemovalPolicy.DESTROY
      : undefined,
    maxInstances: optionalNumber(CONTEXT.maxInstances, ctx(CONTEXT.maxInstances)),
    vpcEndpoints: optionalBoolean(CONTEXT.vpcEndpoints, ctx(CONTEXT.vpcEndpoints)),
  };
  const targets = targetsOf(ctx(CONTEXT.stacks));

  let stack: UsersApiStack | undefined;
  if (targets.includes('apprunner')) {
    const merged = { ...withoutUndefined(fromContext), ...withoutUndefined(props) } as UsersApiStackProps;
    stack = new UsersApiStack(app, STACK_NAME, merged);
  }
  let ecsStack: UsersApiEcsStack | undefined;
  if (targets.includes('ecs')) {
    const { maxInstances: _appRunnerOnly, ...shared } = fromContext;
    void _appRunnerOnly;
    const ecsFromContext: UsersApiEcsStackProps = {
      ...shared,
      maxTasks: optionalNumber(CONTEXT.maxTasks, ctx(CONTEXT.maxTasks)),
      transactionSearch: optionalBoolean(CONTEXT.transactionSearch, ctx(CONTEXT.transactionSearch)),
    };
    const merged = { ...withoutUndefined(ecsFromContext), ...withoutUndefined(ecsProps) } as UsersApiEcsStackProps;
    ecsStack = new UsersApiEcsStack(app, ECS_STACK_NAME, merged);
  }
  Validations.of(app).addPlugins(
    new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }),
  );
  // `stack` is typed as always present for the App Runner tests, which build it on its own.
  return { app, stack: stack as UsersApiStack, ecsStack };
}

function targetsOf(v: unknown): Target[] {
  const s = optionalString(v);
  if (s === undefined) return [...TARGETS];
  const names = s.split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const n of names) {
    if (!(TARGETS as readonly string[]).includes(n)) {
      throw new Error(`${CONTEXT.stacks} must name ${TARGETS.join(' and/or ')}, not ${n}`);
    }
  }
  if (names.length === 0) throw new Error(`${CONTEXT.stacks} names no stack`);
  return names as Target[];
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function optionalString(v: unknown): string | undefined {
  return v === undefined || v === null || v === '' ? undefined : String(v);
}

function optionalNumber(key: string, v: unknown): number | undefined {
  const s = optionalString(v);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n)) throw new Error(`${key} must be a number, not ${s}`);
  return n;
}

function optionalBoolean(key: string, v: unknown): boolean | undefined {
  const s = optionalString(v);
  if (s === undefined) return undefined;
  if (s === 'true') return true;
  if (s === 'false') return false;
  throw new Error(`${key} must be true or false, not ${s}`);
}

function secretsModeOf(v: unknown): SecretsMode | undefined {
  const s = optionalString(v);
  if (s === undefined) return undefined;
  if (!(SECRETS_MODES as readonly string[]).includes(s)) {
    throw new Error(`${CONTEXT.secretsMode} must be one of ${SECRETS_MODES.join(', ')}, not ${s}`);
  }
  return s as SecretsMode;
}
