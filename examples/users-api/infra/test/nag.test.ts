// cdk-nag's AwsSolutions pack: no unacknowledged finding, every acknowledgment with a reason and
// still needed (no stale suppressions), and synth fails on a new finding.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { buildApp } from '../lib/app';
import { synth } from './support';

/** Every rule acknowledged in the tree: rule id → reasons, with the path that acknowledged it. */
function acknowledgments(root: IConstruct): Array<{ path: string; id: string; reason: unknown }> {
  const out: Array<{ path: string; id: string; reason: unknown }> = [];
  for (const c of root.node.findAll()) {
    for (const entry of c.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, unknown>)) {
        out.push({ path: c.node.path, id: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return out;
}

/** The AwsSolutions findings, acknowledged ones left out (`raw`: included). */
function findings(root: IConstruct, raw = false): Array<{ rule: string; severity: string; paths: string[] }> {
  const pack = new AwsSolutionsChecks(undefined, { verbose: true });
  if (raw) {
    // Ignore acknowledgments, to see what each one hides.
    (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
  }
  const report = pack.validateScope(root);
  return report.violations.map((v) => ({
    rule: v.ruleName,
    severity: String(v.severity),
    paths: v.violatingResources.map((r) => (r as { constructPath?: string }).constructPath ?? r.resourceLogicalId ?? ''),
  }));
}

const variants: Array<[string, Record<string, unknown>]> = [
  ['default (runtime secrets)', {}],
  ['secret names', { 'users-api:secretsMode': 'names' }],
  ['auto-pause', { 'users-api:dbMinCapacity': 0, 'users-api:dbAutoPauseMinutes': 10 }],
];

describe('cdk-nag AwsSolutions', () => {
  for (const [name, context] of variants) {
    it(`finds nothing unacknowledged: ${name}`, () => {
      const { app } = synth(context);
      assert.deepEqual(findings(app), []);
    });
  }

  it('runs as a validation plugin of the app, so synth itself fails on a new finding', () => {
    const { app, stack } = buildApp();
    const role = new iam.Role(stack, 'Sloppy', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:*'], resources: ['*'] }));
    const log = console.error;
    console.error = () => {}; // the validation report is printed before the error is thrown
    try {
      assert.throws(() => app.synth(), /[Vv]alidation/);
    } finally {
      console.error = log;
    }
  });

  it('gives every acknowledgment a reason in code', () => {
    const { app } = synth();
    const acks = acknowledgments(app).filter((a) => a.id.startsWith('AwsSolutions-'));
    assert.ok(acks.length > 0);
    for (const a of acks) {
      assert.equal(typeof a.reason, 'string', `${a.path} ${a.id}`);
      assert.ok((a.reason as string).trim().length >= 40, `${a.path} ${a.id}: reason too short: ${a.reason}`);
    }
  });

  it('acknowledges nothing that is not found (no stale suppressions)', () => {
    const { app } = synth();
    const raw = findings(app, true);
    for (const a of acknowledgments(app).filter((x) => x.id.startsWith('AwsSolutions-'))) {
      const hit = raw.find((f) => f.rule === a.id && f.paths.some((p) => p === a.path || p.startsWith(`${a.path}/`)));
      assert.ok(hit, `${a.path} acknowledges ${a.id}, which is not found there`);
    }
  });

  it('acknowledges only the expected rules', () => {
    const { app } = synth();
    const ids = new Set(acknowledgments(app).filter((a) => a.id.startsWith('AwsSolutions-')).map((a) => a.id));
    assert.deepEqual([...ids].sort(), [
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-RDS10',
      'AwsSolutions-RDS6',
      'AwsSolutions-SMG4',
      'AwsSolutions-SQS3',
      'AwsSolutions-VPC7',
    ]);
  });
});
