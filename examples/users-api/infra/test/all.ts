// Runs every test module in one process: the CDK's built-in template validation engine takes a
// few seconds to start once per process, so one process for all synths keeps the suite quick.
// Run with `node --test dist/test/all.js` (test.sh does); each *.test.js also runs on its own.
import './template.test';
import './secrets-mode.test';
import './database-scaling.test';
import './nag.test';
import './image.test';
import './ecs-express.test';
import './vpc-endpoints.test';
import './db-tls.test';
import './jobs.test';
