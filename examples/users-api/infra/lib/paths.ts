import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The repository root: the nearest ancestor of `from` holding the Cargo workspace manifest and
 * its lock file. Found by walking up, so it is the same from `lib/` (ts-node, editors) and from
 * `dist/lib/` (compiled).
 */
export function repositoryRoot(from: string = __dirname): string {
  let dir = path.resolve(from);
  for (;;) {
    const manifest = path.join(dir, 'Cargo.toml');
    if (
      fs.existsSync(manifest) &&
      fs.existsSync(path.join(dir, 'Cargo.lock')) &&
      /^\s*\[workspace\]/m.test(fs.readFileSync(manifest, 'utf8'))
    ) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`no Cargo workspace (Cargo.toml with [workspace] and Cargo.lock) above ${from}`);
    }
    dir = parent;
  }
}

/** Where the users API's Dockerfile lives, relative to the repository root (the build context). */
export const DOCKERFILE = 'examples/users-api/Dockerfile';

/**
 * What the image build context leaves out, in `.dockerignore` syntax (patterns relative to the
 * repository root). The Dockerfile builds with `--locked` from the workspace root, so every
 * workspace member's sources stay in; build output, dependencies of other tool chains and this
 * CDK app do not. Besides keeping `docker build` fast, this keeps `cdk synth` fast: synth hashes
 * the context directory to name the image, and skips an excluded directory without walking it,
 * so `target/` (gigabytes) is never read.
 */
export const IMAGE_CONTEXT_EXCLUDES: readonly string[] = [
  '.git',
  '.github',
  '.test-env',
  '**/target',
  '**/node_modules',
  '**/cdk.out',
  'examples/users-api/infra',
  '**/*.swp',
  '**/.DS_Store',
];
