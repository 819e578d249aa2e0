// Shared helpers of the tests: synthesize the app offline into a throwaway directory.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { buildApp, CONTEXT } from '../lib/app';
import { UsersApiEcsStack, UsersApiEcsStackProps } from '../lib/ecs-express-stack';
import { UsersApiStack, UsersApiStackProps } from '../lib/users-api-stack';

export interface Synthesized {
  readonly app: App;
  readonly stack: UsersApiStack;
  readonly template: Template;
  /** The template as JSON. */
  readonly json: CfnTemplate;
  /** The cloud assembly directory (removed when the process exits). */
  readonly outdir: string;
}

export interface CfnResource {
  Type: string;
  Properties?: Record<string, any>;
  Metadata?: Record<string, any>;
  DependsOn?: string[];
  DeletionPolicy?: string;
}

export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, { Value: unknown; Description?: string }>;
}

const outdirs: string[] = [];
process.on('exit', () => {
  for (const dir of outdirs) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Synthesizes the app with the given context (as `cdk -c key=value` would give it) and props,
 * with the App Runner stack only (`users-api:stacks=apprunner`): the App Runner tests, cdk-nag's
 * among them, look at that stack alone. The ECS stack has its own (`synthEcs`).
 */
export function synth(context: Record<string, unknown> = {}, props: UsersApiStackProps = {}): Synthesized {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'users-api-infra-'));
  outdirs.push(outdir);
  const { app, stack } = buildApp({ outdir, context: { [CONTEXT.stacks]: 'apprunner', ...context } }, props);
  const template = Template.fromStack(stack);
  return { app, stack, template, json: template.toJSON() as CfnTemplate, outdir };
}

export interface SynthesizedEcs {
  readonly app: App;
  readonly stack: UsersApiEcsStack;
  readonly template: Template;
  readonly json: CfnTemplate;
  readonly outdir: string;
}

/** Like `synth`, with the ECS Express Mode stack only. */
export function synthEcs(context: Record<string, unknown> = {}, props: UsersApiEcsStackProps = {}): SynthesizedEcs {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'users-api-infra-ecs-'));
  outdirs.push(outdir);
  const { app, ecsStack } = buildApp({ outdir, context: { [CONTEXT.stacks]: 'ecs', ...context } }, {}, props);
  const template = Template.fromStack(ecsStack!);
  return { app, stack: ecsStack!, template, json: template.toJSON() as CfnTemplate, outdir };
}

const cache = new Map<string, Synthesized>();

/** Like `synth`, memoized per context within one test process. */
export function synthCached(context: Record<string, unknown> = {}): Synthesized {
  const key = JSON.stringify(context);
  let s = cache.get(key);
  if (!s) {
    s = synth(context);
    cache.set(key, s);
  }
  return s;
}

/** Resources of one type, by logical id. */
export function resourcesOf(json: CfnTemplate, type: string): Record<string, CfnResource> {
  return Object.fromEntries(Object.entries(json.Resources).filter(([, r]) => r.Type === type));
}

/** The single resource of a type: its logical id and body (fails unless exactly one exists). */
export function only(json: CfnTemplate, type: string): [string, CfnResource] {
  const found = Object.entries(resourcesOf(json, type));
  if (found.length !== 1) {
    throw new Error(`expected exactly one ${type}, found ${found.length}`);
  }
  return found[0];
}

/** The logical id of a construct's CloudFormation resource. */
export function logicalId(stack: Stack, construct: { node: { defaultChild?: unknown } } | unknown): string {
  const c = construct as { node: { defaultChild?: unknown } };
  const target = (c.node?.defaultChild ?? construct) as Parameters<Stack['getLogicalId']>[0];
  return stack.resolve(stack.getLogicalId(target)) as string;
}

export const ref = (id: string) => ({ Ref: id });
export const getAtt = (id: string, attr: string) => ({ 'Fn::GetAtt': [id, attr] });

/** `x` as an array (CloudFormation allows a single value where a list is meant). */
export function asArray<T>(x: T | T[] | undefined): T[] {
  return x === undefined ? [] : Array.isArray(x) ? x : [x];
}

export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Sid?: string;
  Principal?: unknown;
}

/** Every identity-policy statement in the template, with the resource that carries it. */
export function identityStatements(json: CfnTemplate): Array<{ owner: string; statement: Statement }> {
  const out: Array<{ owner: string; statement: Statement }> = [];
  for (const [id, r] of Object.entries(json.Resources)) {
    const docs: any[] = [];
    if (r.Type === 'AWS::IAM::Role' || r.Type === 'AWS::IAM::User' || r.Type === 'AWS::IAM::Group') {
      for (const p of r.Properties?.Policies ?? []) docs.push(p.PolicyDocument);
    }
    if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
      docs.push(r.Properties?.PolicyDocument);
    }
    for (const doc of docs) {
      for (const statement of asArray(doc?.Statement)) out.push({ owner: id, statement });
    }
  }
  return out;
}

/** The runtime environment variables of the App Runner service, as a plain object. */
export function serviceEnvironment(service: CfnResource): Record<string, unknown> {
  const config = service.Properties!.SourceConfiguration.ImageRepository.ImageConfiguration;
  return Object.fromEntries(
    asArray<{ Name: string; Value: unknown }>(config.RuntimeEnvironmentVariables).map((v) => [v.Name, v.Value]),
  );
}

/** The runtime environment secrets of the App Runner service, as a plain object. */
export function serviceSecrets(service: CfnResource): Record<string, unknown> {
  const config = service.Properties!.SourceConfiguration.ImageRepository.ImageConfiguration;
  return Object.fromEntries(
    asArray<{ Name: string; Value: unknown }>(config.RuntimeEnvironmentSecrets).map((v) => [v.Name, v.Value]),
  );
}

/** The primary container's environment variables of the ECS Express service, as a plain object. */
export function containerEnvironment(service: CfnResource): Record<string, unknown> {
  return Object.fromEntries(
    asArray<{ Name: string; Value: unknown }>(service.Properties!.PrimaryContainer.Environment).map((v) => [v.Name, v.Value]),
  );
}

/** The primary container's secrets of the ECS Express service (name → valueFrom). */
export function containerSecrets(service: CfnResource): Record<string, unknown> {
  return Object.fromEntries(
    asArray<{ Name: string; ValueFrom: unknown }>(service.Properties!.PrimaryContainer.Secrets).map((v) => [v.Name, v.ValueFrom]),
  );
}

/** Every cdk-nag acknowledgment in the tree: path, rule id and reason. */
export function nagAcknowledgments(root: IConstruct): Array<{ path: string; id: string; reason: unknown }> {
  const out: Array<{ path: string; id: string; reason: unknown }> = [];
  for (const c of root.node.findAll()) {
    for (const entry of c.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, unknown>)) {
        out.push({ path: c.node.path, id: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return out.filter((a) => a.id.startsWith('AwsSolutions-'));
}

/** The AwsSolutions findings, acknowledged ones left out (`raw`: included). */
export function nagFindings(root: IConstruct, raw = false): Array<{ rule: string; paths: string[] }> {
  const pack = new AwsSolutionsChecks(undefined, { verbose: true });
  if (raw) (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
  return pack.validateScope(root).violations.map((v) => ({
    rule: v.ruleName,
    paths: v.violatingResources.map((r) => (r as { constructPath?: string }).constructPath ?? r.resourceLogicalId ?? ''),
  }));
}
