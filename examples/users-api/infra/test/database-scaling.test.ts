// Aurora Serverless v2 capacity from context: the range, and auto-pause at 0 ACU.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Duration } from 'aws-cdk-lib';
import { only, synth } from './support';

describe('Serverless v2 capacity', () => {
  it('takes min and max capacity from context (strings, as `cdk -c` gives them)', () => {
    const { json } = synth({ 'users-api:dbMinCapacity': '1', 'users-api:dbMaxCapacity': '8' });
    const [, cluster] = only(json, 'AWS::RDS::DBCluster');
    assert.deepEqual(cluster.Properties!.ServerlessV2ScalingConfiguration, { MinCapacity: 1, MaxCapacity: 8 });
  });

  it('auto-pauses at 0 ACU after the given idle time', () => {
    const { json } = synth({ 'users-api:dbMinCapacity': 0, 'users-api:dbAutoPauseMinutes': '10' });
    const [, cluster] = only(json, 'AWS::RDS::DBCluster');
    assert.deepEqual(cluster.Properties!.ServerlessV2ScalingConfiguration, {
      MinCapacity: 0,
      MaxCapacity: 5,
      SecondsUntilAutoPause: 600,
    });
  });

  it('auto-pauses at 0 ACU with Aurora\'s default idle time when none is given', () => {
    const { json } = synth({}, { dbMinCapacity: 0 });
    const [, cluster] = only(json, 'AWS::RDS::DBCluster');
    const scaling = cluster.Properties!.ServerlessV2ScalingConfiguration;
    assert.equal(scaling.MinCapacity, 0);
    assert.ok(scaling.SecondsUntilAutoPause === undefined || scaling.SecondsUntilAutoPause === 300);
  });

  it('refuses an auto-pause time without 0 ACU minimum', () => {
    assert.throws(() => synth({}, { dbAutoPauseAfter: Duration.minutes(10) }), /dbAutoPauseAfter needs dbMinCapacity 0/);
  });

  it('refuses a minimum above the maximum', () => {
    assert.throws(() => synth({ 'users-api:dbMinCapacity': 6 }), /exceeds dbMaxCapacity/);
  });

  it('refuses a capacity that is not a number', () => {
    assert.throws(() => synth({ 'users-api:dbMaxCapacity': 'lots' }), /dbMaxCapacity must be a number/);
  });
});
