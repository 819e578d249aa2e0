// The two ways the service receives its secrets: runtime environment secrets, or secret names.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { identityStatements, logicalId, only, ref, serviceEnvironment, serviceSecrets, synth, synthCached } from './support';

describe('secretsMode=runtime (the default)', () => {
  const { json, stack } = synthCached();
  const [, service] = only(json, 'AWS::AppRunner::Service');
  const db = logicalId(stack, stack.databaseSecret);
  const jwt = logicalId(stack, stack.jwtSecret);

  it('has App Runner inject both secrets into DB_SECRET and JWT_SECRET', () => {
    assert.deepEqual(serviceSecrets(service), { DB_SECRET: ref(db), JWT_SECRET: ref(jwt) });
  });

  it('sets no secret names', () => {
    const env = serviceEnvironment(service);
    for (const name of ['DB_SECRET_NAME', 'JWT_SECRET_NAME', 'APPRUNNER_SECRETS', 'DB_SECRET', 'JWT_SECRET']) {
      assert.equal(env[name], undefined, name);
    }
  });
});

describe('secretsMode=names', () => {
  const { json, stack } = synth({ 'users-api:secretsMode': 'names' });
  const [, service] = only(json, 'AWS::AppRunner::Service');
  const db = logicalId(stack, stack.databaseSecret);
  const jwt = logicalId(stack, stack.jwtSecret);

  it('passes the secret ARNs in DB_SECRET_NAME, JWT_SECRET_NAME and the kit mapping', () => {
    const env = serviceEnvironment(service);
    assert.deepEqual(env.DB_SECRET_NAME, ref(db));
    assert.deepEqual(env.JWT_SECRET_NAME, ref(jwt));
    assert.deepEqual(env.APPRUNNER_SECRETS, { 'Fn::Join': ['', ['JWT_SECRET=', ref(jwt)]] });
    assert.equal(env.OTEL_RESOURCE_ATTRIBUTES, 'service.name=users-api,cloud.platform=aws_app_runner');
  });

  it('injects nothing at deploy time', () => {
    assert.deepEqual(serviceSecrets(service), {});
  });

  it('grants the same least privilege as the runtime mode', () => {
    const runtime = synthCached();
    const strip = (x: ReturnType<typeof identityStatements>) => JSON.stringify(x);
    assert.equal(strip(identityStatements(json)), strip(identityStatements(runtime.json)));
  });
});

describe('secretsMode validation', () => {
  it('rejects an unknown mode', () => {
    assert.throws(() => synth({ 'users-api:secretsMode': 'env' }), /secretsMode must be one of runtime, names/);
  });
});
