// users-api:vpcEndpoints: interface endpoints instead of the NAT gateway, for both stacks.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Stack } from 'aws-cdk-lib';
import { APP_RUNNER_ENDPOINT_SERVICES } from '../lib/users-api-stack';
import { ECS_ENDPOINT_SERVICES } from '../lib/ecs-express-stack';
import { CfnTemplate, getAtt, logicalId, nagFindings, resourcesOf, synth, synthCached, synthEcs } from './support';

/** The interface endpoints' service names without the region: e.g. `xray`, `ecr.dkr`. */
function interfaceServices(json: CfnTemplate): string[] {
  return Object.values(resourcesOf(json, 'AWS::EC2::VPCEndpoint'))
    .filter((r) => r.Properties!.VpcEndpointType === 'Interface')
    .map((r) => {
      // com.amazonaws.<region>.<service>, as a Fn::Join around the region
      const parts: unknown[] = r.Properties!.ServiceName['Fn::Join'][1];
      return String(parts[parts.length - 1]).replace(/^\./, '');
    })
    .sort();
}

function gatewayEndpoints(json: CfnTemplate): number {
  return Object.values(resourcesOf(json, 'AWS::EC2::VPCEndpoint')).filter((r) => r.Properties!.VpcEndpointType === 'Gateway').length;
}

/** Checks the endpoint variant of a stack's network. */
function checkNoNat(json: CfnTemplate, stack: Stack & { vpc: import('aws-cdk-lib/aws-ec2').Vpc }, appSgId: string) {
  assert.equal(Object.keys(resourcesOf(json, 'AWS::EC2::NatGateway')).length, 0, 'no NAT gateway');
  assert.equal(Object.keys(resourcesOf(json, 'AWS::EC2::EIP')).length, 0, 'no public IPv4 address');
  const routes = Object.values(resourcesOf(json, 'AWS::EC2::Route')).map((r) => r.Properties!);
  assert.equal(routes.length, 2, 'only the public subnets route out (to the internet gateway)');
  for (const r of routes) assert.ok(r.GatewayId !== undefined);
  for (const r of Object.values(resourcesOf(json, 'AWS::EC2::VPCEndpoint')).filter((x) => x.Properties!.VpcEndpointType === 'Interface')) {
    assert.equal(r.Properties!.PrivateDnsEnabled, true);
    const app = stack.vpc.selectSubnets({ subnetGroupName: 'app' }).subnets.map((sn) => ({ Ref: logicalId(stack, sn) }));
    assert.deepEqual(r.Properties!.SubnetIds, app, 'one interface per AZ, in the app subnets');
  }
  // The endpoints' group takes HTTPS from the service's group only.
  const ingress = Object.values(resourcesOf(json, 'AWS::EC2::SecurityGroupIngress'))
    .map((r) => r.Properties!)
    .filter((x) => x.FromPort === 443);
  assert.equal(ingress.length, 1);
  assert.deepEqual(ingress[0].SourceSecurityGroupId, getAtt(appSgId, 'GroupId'));
  for (const sg of Object.values(resourcesOf(json, 'AWS::EC2::SecurityGroup'))) {
    assert.equal(sg.Properties!.SecurityGroupIngress, undefined, 'no inline (CIDR) ingress');
  }
}

describe('VPC endpoints off (the default)', () => {
  it('App Runner: one NAT gateway, no endpoints', () => {
    const { json } = synthCached();
    assert.equal(Object.keys(resourcesOf(json, 'AWS::EC2::NatGateway')).length, 1);
    assert.equal(Object.keys(resourcesOf(json, 'AWS::EC2::VPCEndpoint')).length, 0);
  });

  it('ECS: one NAT gateway, no endpoints', () => {
    const { json } = synthEcs();
    assert.equal(Object.keys(resourcesOf(json, 'AWS::EC2::NatGateway')).length, 1);
    assert.equal(Object.keys(resourcesOf(json, 'AWS::EC2::VPCEndpoint')).length, 0);
  });
});

describe('VPC endpoints on (users-api:vpcEndpoints=true)', () => {
  const ar = synth({ 'users-api:vpcEndpoints': 'true' });
  const ecs = synthEcs({ 'users-api:vpcEndpoints': 'true' });

  it('App Runner: Secrets Manager, X-Ray and SNS (the jobs) endpoints instead of the NAT gateway', () => {
    assert.ok(APP_RUNNER_ENDPOINT_SERVICES.includes('sns'), 'the service publishes its jobs');
    assert.deepEqual(interfaceServices(ar.json), [...APP_RUNNER_ENDPOINT_SERVICES].sort());
    assert.equal(gatewayEndpoints(ar.json), 0);
    checkNoNat(ar.json, ar.stack, logicalId(ar.stack, ar.stack.connectorSecurityGroup));
    const connector = Object.values(resourcesOf(ar.json, 'AWS::AppRunner::VpcConnector'))[0].Properties!;
    const app = ar.stack.vpc.selectSubnets({ subnetGroupName: 'app' }).subnets.map((sn) => ({ Ref: logicalId(ar.stack, sn) }));
    assert.deepEqual(connector.Subnets, app);
  });

  it('ECS: ECR (API and registry), Logs, Secrets Manager, X-Ray and SNS endpoints, plus the free S3 gateway', () => {
    assert.ok(ECS_ENDPOINT_SERVICES.includes('sns'), 'the service publishes its jobs');
    assert.deepEqual(interfaceServices(ecs.json), [...ECS_ENDPOINT_SERVICES].sort());
    assert.equal(gatewayEndpoints(ecs.json), 1);
    checkNoNat(ecs.json, ecs.stack, logicalId(ecs.stack, ecs.stack.serviceSecurityGroup));
    const [, svc] = Object.entries(resourcesOf(ecs.json, 'AWS::ECS::ExpressGatewayService'))[0];
    for (const e of Object.values(ecs.stack.endpoints)) {
      assert.ok(svc.DependsOn!.includes(logicalId(ecs.stack, e!)), 'the service waits for its endpoints');
    }
  });

  it('keeps the database where it was (isolated subnets, its own group)', () => {
    for (const s of [ar, ecs]) {
      const group = Object.values(resourcesOf(s.json, 'AWS::RDS::DBSubnetGroup'))[0].Properties!;
      const db = s.stack.vpc.selectSubnets({ subnetGroupName: 'db' }).subnets.map((sn) => ({ Ref: logicalId(s.stack, sn) }));
      assert.deepEqual(group.SubnetIds, db);
    }
  });

  it('passes cdk-nag', () => {
    assert.deepEqual(nagFindings(ar.app), []);
    assert.deepEqual(nagFindings(ecs.app), []);
  });

  it('rejects a flag that is not true or false', () => {
    assert.throws(() => synth({ 'users-api:vpcEndpoints': 'maybe' }), /vpcEndpoints must be true or false/);
  });
});
