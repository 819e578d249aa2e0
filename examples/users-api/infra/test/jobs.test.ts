// Background jobs over SNS HTTPS push (issue 22), in both stacks: the encrypted topic and who may
// publish to it, the HTTPS subscription of <service URL>/jobs/sns, its delivery policy (the retry
// span computed here from the template, independently of lib/shared.ts), the dead-letter queue,
// the runtime role's permission and APPRUNNER_JOBS_TOPIC_ARN.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Duration } from 'aws-cdk-lib';
import {
  JOBS_ATTEMPT_SECONDS,
  JOBS_DELIVERY_POLICY,
  JOBS_MAX_MESSAGE_AGE_SECONDS,
  JOBS_PATH,
  JOBS_TOPIC_ARN_ENV,
  jobsRetrySpanSeconds,
} from '../lib/shared';
import {
  asArray,
  CfnResource,
  CfnTemplate,
  containerEnvironment,
  getAtt,
  identityStatements,
  logicalId,
  nagAcknowledgments,
  only,
  ref,
  serviceEnvironment,
  synthCached,
  synthEcs,
} from './support';

/** What the service's own limits allow: App Runner's request timeout and the message age. */
const APP_RUNNER_REQUEST_TIMEOUT_SECONDS = 120;
const MESSAGE_AGE_LIMIT_SECONDS = 3600;

interface Case {
  readonly name: string;
  readonly json: CfnTemplate;
  readonly ids: { service: string; runtimeRole: string; topic: string; key: string; queue: string };
  /** The service attribute the subscription's host comes from. */
  readonly urlAttribute: string;
  readonly environment: (service: CfnResource) => Record<string, unknown>;
}

function appRunnerCase(name: string, context: Record<string, unknown> = {}): Case {
  const { json, stack } = synthCached(context);
  return {
    name,
    json,
    ids: {
      service: logicalId(stack, stack.service),
      runtimeRole: logicalId(stack, stack.instanceRole),
      topic: logicalId(stack, stack.jobs.topic),
      key: logicalId(stack, stack.jobs.key),
      queue: logicalId(stack, stack.jobs.deadLetterQueue),
    },
    urlAttribute: 'ServiceUrl',
    environment: serviceEnvironment,
  };
}

function ecsCase(name: string, context: Record<string, unknown> = {}): Case {
  const { json, stack } = synthEcs(context);
  return {
    name,
    json,
    ids: {
      service: logicalId(stack, stack.service),
      runtimeRole: logicalId(stack, stack.taskRole),
      topic: logicalId(stack, stack.jobs.topic),
      key: logicalId(stack, stack.jobs.key),
      queue: logicalId(stack, stack.jobs.deadLetterQueue),
    },
    urlAttribute: 'Endpoint',
    environment: containerEnvironment,
  };
}

/**
 * The worst case, in seconds, from publication to the end of the last attempt of a rendered
 * `healthyRetryPolicy`: no delay for the immediate retries, `minDelayTarget` for the pre-backoff
 * ones, at most `maxDelayTarget` for every backoff and post-backoff one (any backoff function
 * stays between the two), and each of the numRetries + 1 attempts lasting `attempt` seconds.
 */
function retrySpan(p: Record<string, number>, attempt: number): number {
  const backoff = p.numRetries - p.numNoDelayRetries - p.numMinDelayRetries - p.numMaxDelayRetries;
  assert.ok(backoff >= 0, 'the phases hold more retries than numRetries');
  return (
    p.numNoDelayRetries * 0 +
    p.numMinDelayRetries * p.minDelayTarget +
    (backoff + p.numMaxDelayRetries) * p.maxDelayTarget +
    (p.numRetries + 1) * attempt
  );
}

const cases: Case[] = [
  appRunnerCase('App Runner'),
  appRunnerCase('App Runner, secret names and VPC endpoints', {
    'users-api:secretsMode': 'names',
    'users-api:vpcEndpoints': 'true',
  }),
  ecsCase('ECS Express'),
  ecsCase('ECS Express, secret names and VPC endpoints', {
    'users-api:secretsMode': 'names',
    'users-api:vpcEndpoints': 'true',
  }),
];

for (const c of cases) {
  const { json, ids } = c;
  const [, topic] = only(json, 'AWS::SNS::Topic');
  const [, subscription] = only(json, 'AWS::SNS::Subscription');
  const [, topicPolicy] = only(json, 'AWS::SNS::TopicPolicy');
  const [, queue] = only(json, 'AWS::SQS::Queue');
  const [, queuePolicy] = only(json, 'AWS::SQS::QueuePolicy');
  const [, key] = only(json, 'AWS::KMS::Key');
  const roleArn = getAtt(ids.runtimeRole, 'Arn');

  describe(`jobs (${c.name}): topic`, () => {
    it('is encrypted with its own KMS key, rotated, and signs with SHA256', () => {
      assert.deepEqual(topic.Properties!.KmsMasterKeyId, getAtt(ids.key, 'Arn'));
      assert.equal(key.Properties!.EnableKeyRotation, true);
      assert.equal(topic.Properties!.SignatureVersion, '2');
      assert.equal(topic.Properties!.FifoTopic, undefined, 'a standard topic (HTTPS subscriptions need one)');
    });

    it('lets only the runtime role publish, and only over TLS', () => {
      assert.deepEqual(topicPolicy.Properties!.Topics, [ref(ids.topic)]);
      const statements = asArray<any>(topicPolicy.Properties!.PolicyDocument.Statement);
      const byEffect = (e: string) => statements.filter((s) => s.Effect === e);
      for (const s of statements) {
        assert.equal(s.Action, 'sns:Publish', `${s.Sid}: publish only`);
        assert.deepEqual(s.Resource, ref(ids.topic));
      }
      assert.deepEqual(
        byEffect('Allow').map((s) => s.Principal),
        [{ AWS: roleArn }],
        'the runtime role is the only principal allowed',
      );
      const denies = byEffect('Deny');
      assert.ok(
        denies.some((s) => s.Principal === '*' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false'),
        'publishing without TLS is denied to everyone',
      );
      assert.ok(
        denies.some(
          (s) => s.Principal === '*' && JSON.stringify(s.Condition?.ArnNotEquals?.['aws:PrincipalArn']) === JSON.stringify(roleArn),
        ),
        'every principal but the runtime role is denied (same-account IAM grants would need no allow)',
      );
      assert.equal(statements.length, 3);
    });
  });

  describe(`jobs (${c.name}): subscription`, () => {
    const p = subscription.Properties!;

    it(`is an https subscription of https://<${c.urlAttribute}>${JOBS_PATH}`, () => {
      assert.equal(JOBS_PATH, '/jobs/sns');
      assert.equal(p.Protocol, 'https');
      assert.deepEqual(p.TopicArn, ref(ids.topic));
      assert.deepEqual(p.Endpoint, {
        'Fn::Join': ['', ['https://', getAtt(ids.service, c.urlAttribute), '/jobs/sns']],
      });
      assert.equal(p.RawMessageDelivery, undefined, 'the service verifies the SNS envelope and its signature');
    });

    it('has a delivery policy whose retries all start within the hour the service accepts a message', () => {
      const retry = p.DeliveryPolicy.healthyRetryPolicy;
      for (const field of [
        'numRetries',
        'numNoDelayRetries',
        'numMinDelayRetries',
        'numMaxDelayRetries',
        'minDelayTarget',
        'maxDelayTarget',
      ]) {
        assert.ok(Number.isInteger(retry[field]) && retry[field] >= 0, `${field}: ${retry[field]}`);
      }
      assert.ok(['LINEAR', 'ARITHMETIC', 'GEOMETRIC', 'EXPONENTIAL'].includes(String(retry.backoffFunction).toUpperCase()));
      assert.ok(retry.numRetries <= 100, 'SNS allows 100 retries at most');
      assert.ok(retry.minDelayTarget >= 1 && retry.minDelayTarget <= retry.maxDelayTarget);
      const throttle = p.DeliveryPolicy.throttlePolicy.maxReceivesPerSecond;
      assert.ok(Number.isInteger(throttle) && throttle >= 1, `maxReceivesPerSecond: ${throttle}`);

      // Every attempt may last as long as App Runner lets a request run.
      const span = retrySpan(retry, APP_RUNNER_REQUEST_TIMEOUT_SECONDS);
      assert.ok(span < MESSAGE_AGE_LIMIT_SECONDS, `worst-case retry span ${span} s`);
      assert.equal(span, 3300, 'the span the README documents');
      // Without the attempts' own time, the delays alone are SNS's "total policy retry time".
      assert.ok(retrySpan(retry, 0) < 3600, 'SNS refuses policies over 3600 s');
    });

    it('sends what SNS gives up on to the dead-letter queue', () => {
      assert.deepEqual(p.RedrivePolicy, { deadLetterTargetArn: getAtt(ids.queue, 'Arn') });
    });
  });

  describe(`jobs (${c.name}): dead-letter queue`, () => {
    it('is encrypted (SQS-managed keys), keeps messages 14 days', () => {
      assert.equal(queue.Properties!.SqsManagedSseEnabled, true);
      assert.equal(queue.Properties!.MessageRetentionPeriod, 14 * 24 * 3600);
    });

    it('takes messages from this topic\'s SNS only, and nothing without TLS', () => {
      assert.deepEqual(queuePolicy.Properties!.Queues, [ref(ids.queue)]);
      const statements = asArray<any>(queuePolicy.Properties!.PolicyDocument.Statement);
      const allows = statements.filter((s) => s.Effect === 'Allow');
      assert.deepEqual(allows, [
        {
          Effect: 'Allow',
          Principal: { Service: 'sns.amazonaws.com' },
          Action: 'sqs:SendMessage',
          Resource: getAtt(ids.queue, 'Arn'),
          Condition: { ArnEquals: { 'aws:SourceArn': ref(ids.topic) } },
        },
      ]);
      assert.ok(
        statements.some(
          (s) => s.Effect === 'Deny' && s.Action === 'sqs:*' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false',
        ),
      );
    });
  });

  describe(`jobs (${c.name}): the service`, () => {
    const [, service] = only(json, c.urlAttribute === 'ServiceUrl' ? 'AWS::AppRunner::Service' : 'AWS::ECS::ExpressGatewayService');

    it(`gets the topic ARN in ${JOBS_TOPIC_ARN_ENV}`, () => {
      assert.equal(JOBS_TOPIC_ARN_ENV, 'APPRUNNER_JOBS_TOPIC_ARN');
      assert.deepEqual(c.environment(service)[JOBS_TOPIC_ARN_ENV], ref(ids.topic));
    });

    it('may publish with its runtime role (sns:Publish on the topic, the key to encrypt), and no other role may', () => {
      const statements = identityStatements(json);
      const mine = statements.filter((s) => s.owner === ids.runtimeRole).map((s) => s.statement);
      assert.deepEqual(
        mine.filter((s) => s.Sid === 'PublishJobs' || s.Sid === 'EncryptJobs'),
        [
          { Sid: 'PublishJobs', Effect: 'Allow', Action: 'sns:Publish', Resource: ref(ids.topic) },
          {
            Sid: 'EncryptJobs',
            Effect: 'Allow',
            Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
            Resource: getAtt(ids.key, 'Arn'),
          },
        ],
      );
      const publishers = statements.filter((s) => asArray(s.statement.Action).some((a) => a.startsWith('sns:')));
      assert.deepEqual([...new Set(publishers.map((s) => s.owner))], [ids.runtimeRole]);
      const keyUsers = statements.filter((s) => asArray(s.statement.Action).some((a) => a.startsWith('kms:')));
      assert.deepEqual([...new Set(keyUsers.map((s) => s.owner))], [ids.runtimeRole]);
    });

    it('is subscribed only after it exists (the endpoint is its attribute) and outputs the topic and queue', () => {
      // The GetAtt orders the subscription after the service: SNS posts the confirmation at once.
      assert.match(JSON.stringify(subscription.Properties!.Endpoint), new RegExp(`"${ids.service}"`));
      assert.deepEqual(json.Outputs!.JobsTopicArn.Value, ref(ids.topic));
      assert.deepEqual(json.Outputs!.JobsDeadLetterQueueUrl.Value, ref(ids.queue));
    });
  });
}

describe('jobs: delivery policy arithmetic (lib/shared.ts)', () => {
  it('counts each attempt as long as App Runner lets a request run', () => {
    assert.equal(JOBS_ATTEMPT_SECONDS, APP_RUNNER_REQUEST_TIMEOUT_SECONDS);
    assert.equal(JOBS_MAX_MESSAGE_AGE_SECONDS, MESSAGE_AGE_LIMIT_SECONDS);
  });

  it('agrees with the test\'s own computation: 3300 s', () => {
    assert.equal(jobsRetrySpanSeconds(JOBS_DELIVERY_POLICY), 3300);
    // 2 × 30 s + (5 backoff + 3 post-backoff) × 240 s + 11 attempts × 120 s
    assert.equal(2 * 30 + (5 + 3) * 240 + 11 * 120, 3300);
  });

  it('would flag a policy that outlasts the hour', () => {
    const long = {
      healthyRetryPolicy: {
        numRetries: 20,
        minDelayTarget: Duration.seconds(20),
        maxDelayTarget: Duration.seconds(300),
      },
    };
    assert.ok(jobsRetrySpanSeconds(long) >= MESSAGE_AGE_LIMIT_SECONDS);
    assert.throws(() => jobsRetrySpanSeconds({ healthyRetryPolicy: { numRetries: 1, numMinDelayRetries: 2 } }), /more phase retries/);
  });
});

describe('jobs: cdk-nag', () => {
  it('acknowledges nothing under Jobs but SQS3 on the dead-letter queue, with its reason', () => {
    for (const s of [synthCached(), synthEcs()]) {
      const mine = nagAcknowledgments(s.app).filter((a) => a.path.includes('/Jobs'));
      assert.deepEqual(
        mine.map((a) => [a.path.replace(/^[^/]+\//, ''), a.id]),
        [['Jobs/DeadLetterQueue', 'AwsSolutions-SQS3']],
      );
      assert.match(String(mine[0].reason), /itself a dead-letter queue/);
    }
  });
});
