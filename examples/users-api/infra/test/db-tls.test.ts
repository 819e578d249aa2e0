// Verified TLS to Aurora: both stacks tell the kit to use verify-full with the RDS CA bundle,
// and the image carries that bundle at the path they name, downloaded from AWS's documented URL
// and checked against a pinned SHA-256.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { repositoryRoot, DOCKERFILE } from '../lib/paths';
import { DB_TLS_ENVIRONMENT, RDS_CA_BUNDLE_PATH } from '../lib/shared';
import { containerEnvironment, only, serviceEnvironment, synthCached, synthEcs } from './support';

const RDS_BUNDLE_URL = 'https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem';

describe('verified TLS to the database', () => {
  it('names verify-full and a CA file under /etc/ssl', () => {
    assert.deepEqual(DB_TLS_ENVIRONMENT, { DB_SSL_MODE: 'verify-full', DB_SSL_ROOT_CERT: RDS_CA_BUNDLE_PATH });
    assert.match(RDS_CA_BUNDLE_PATH, /^\/etc\/ssl\/\S+\.pem$/);
  });

  for (const secretsMode of ['runtime', 'names']) {
    it(`App Runner (secretsMode=${secretsMode}) sets DB_SSL_MODE=verify-full and DB_SSL_ROOT_CERT`, () => {
      const { json } = synthCached({ 'users-api:secretsMode': secretsMode });
      const [, service] = only(json, 'AWS::AppRunner::Service');
      const env = serviceEnvironment(service);
      assert.equal(env.DB_SSL_MODE, 'verify-full');
      assert.equal(env.DB_SSL_ROOT_CERT, RDS_CA_BUNDLE_PATH);
    });

    it(`ECS Express (secretsMode=${secretsMode}) sets DB_SSL_MODE=verify-full and DB_SSL_ROOT_CERT`, () => {
      const { json } = synthEcs({ 'users-api:secretsMode': secretsMode });
      const [, service] = only(json, 'AWS::ECS::ExpressGatewayService');
      const env = containerEnvironment(service);
      assert.equal(env.DB_SSL_MODE, 'verify-full');
      assert.equal(env.DB_SSL_ROOT_CERT, RDS_CA_BUNDLE_PATH);
    });
  }
});

describe('Dockerfile: the RDS CA bundle', () => {
  const text = fs.readFileSync(path.join(repositoryRoot(), DOCKERFILE), 'utf8');
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const args = Object.fromEntries(
    instructions
      .filter((l) => /^ARG \w+=/.test(l))
      .map((l) => l.slice(4).split('=', 2) as [string, string]),
  );

  it("downloads it from AWS's documented URL over HTTPS", () => {
    assert.equal(args.RDS_CA_BUNDLE_URL, RDS_BUNDLE_URL);
    assert.ok(
      instructions.some((l) => /^RUN .*curl .*--fail.*--proto '=https'.*"\$\{RDS_CA_BUNDLE_URL\}"/.test(l)),
      'curl --fail --proto =https of RDS_CA_BUNDLE_URL',
    );
  });

  it('checks it against a pinned SHA-256 in the same step', () => {
    assert.match(args.RDS_CA_BUNDLE_SHA256 ?? '', /^[0-9a-f]{64}$/);
    const fetch = instructions.find((l) => l.includes('${RDS_CA_BUNDLE_URL}'));
    assert.ok(fetch, 'the download step');
    assert.match(fetch!, /echo "\$\{RDS_CA_BUNDLE_SHA256\}  \S+" \| sha256sum --check --strict -/);
  });

  it('copies it read-only into the runtime stage at the path the stacks name', () => {
    const from = instructions.filter((l) => /^FROM /i.test(l));
    const runtime = instructions.slice(instructions.lastIndexOf(from[from.length - 1]));
    const copy = runtime.find((l) => l.endsWith(` ${RDS_CA_BUNDLE_PATH}`));
    assert.ok(copy, `no COPY to ${RDS_CA_BUNDLE_PATH} in the runtime stage`);
    assert.match(copy!, /^COPY --from=\S+ --chmod=0444 \S+ /);
  });
});
