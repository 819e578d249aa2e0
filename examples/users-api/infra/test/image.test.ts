// The image: the Dockerfile's shape (Docker cannot run here, so it is checked as text), and the
// build context that synth hashes and stages (the repository root minus build output).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { DOCKERFILE, IMAGE_CONTEXT_EXCLUDES, repositoryRoot } from '../lib/paths';
import { synthCached } from './support';

const root = repositoryRoot();
const dockerfile = fs.readFileSync(path.join(root, DOCKERFILE), 'utf8');
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

describe('Dockerfile', () => {
  it('builds the users-api package with the locked workspace in a rust:1-bookworm stage', () => {
    const from = instructions.filter((l) => /^FROM /i.test(l));
    assert.equal(from.length, 3, 'three stages: build, the RDS CA bundle, runtime');
    assert.match(from[0], /^FROM rust:1-bookworm AS \S+$/i);
    assert.ok(instructions.some((l) => /cargo build --release -p users-api --locked/.test(l)));
  });

  it('runs as a non-root user in a small Debian image', () => {
    const from = instructions.filter((l) => /^FROM /i.test(l));
    const runtime = from[from.length - 1];
    assert.match(runtime, /^FROM (debian:bookworm-slim|gcr\.io\/distroless\/cc\S*)( AS \S+)?$/i);
    const users = instructions.filter((l) => /^USER /i.test(l));
    assert.equal(users.length, 1);
    assert.doesNotMatch(users[0], /^USER (root|0)(:|$)/i);
    const last = instructions.slice(instructions.findIndex((l) => l === runtime));
    assert.ok(last.indexOf(users[0]) > 0, 'USER is set in the runtime stage');
  });

  it('installs the binary at /usr/local/bin/users-api, listens on PORT (8080) and runs it', () => {
    assert.ok(instructions.some((l) => /^COPY --from=\S+ \S+ \/usr\/local\/bin\/users-api$/.test(l)));
    assert.ok(instructions.includes('ENV PORT=8080'));
    assert.ok(instructions.includes('EXPOSE 8080'));
    assert.ok(instructions.includes('ENTRYPOINT ["/usr/local/bin/users-api"]'));
  });

  it('is matched by a root .dockerignore with the same exclusions as the CDK asset', () => {
    const ignore = fs
      .readFileSync(path.join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(ignore, [...IMAGE_CONTEXT_EXCLUDES]);
  });
});

describe('image asset', () => {
  const { outdir, stack } = synthCached();
  const staged = path.join(outdir, `asset.${stack.image.assetHash}`);

  it('stages the workspace with its lock file and the Dockerfile', () => {
    for (const p of ['Cargo.toml', 'Cargo.lock', DOCKERFILE, 'apprunner-kit/Cargo.toml']) {
      assert.ok(fs.existsSync(path.join(staged, p)), `${p} missing from the build context`);
    }
  });

  it('leaves build output, VCS data, Node modules and this CDK app out of the build context', () => {
    for (const p of ['target', '.git', '.test-env', 'examples/users-api/infra']) {
      assert.ok(!fs.existsSync(path.join(staged, p)), `${p} is in the build context`);
    }
    const walk = (dir: string): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
        const p = path.join(dir, e.name);
        return e.isDirectory() ? [p, ...walk(p)] : [p];
      });
    const bad = walk(staged).filter((p) => /\/(node_modules|cdk\.out|target)(\/|$)/.test(p));
    assert.deepEqual(bad, []);
  });

  it('builds for linux/amd64, what App Runner runs', () => {
    const assets = JSON.parse(fs.readFileSync(path.join(outdir, `${stack.stackName}.assets.json`), 'utf8'));
    const image = assets.dockerImages[stack.image.assetHash];
    assert.equal(image.source.dockerFile, DOCKERFILE);
    assert.equal(image.source.platform, 'linux/amd64');
  });
});
