#!/usr/bin/env node
// The CDK app of the users API example: `npx cdk synth` / `npx cdk deploy` (see ../README.md).
// The CLI sets CDK_OUTDIR, so the app synthesizes itself when this script ends.
import { buildApp } from '../lib/app';

buildApp();
