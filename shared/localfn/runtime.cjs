'use strict';
// A Lambda Runtime API client for Node.js handlers, as localfn runs them
// under the runtime interface emulator: it loads the handler named by
// _HANDLER (file.export, the file relative to the working directory, as
// Lambda's Node.js runtime reads it), then takes each invocation from
// AWS_LAMBDA_RUNTIME_API, awaits the handler and posts its result, or its
// error in Lambda's {errorType, errorMessage, trace} form.
const http = require('node:http');
const path = require('node:path');

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const base = '/2018-06-01/runtime';

function call(method, route, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(`http://${api}${base}${route}`, { method, headers: { ...(headers || {}) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function errorBody(err) {
  const e = err instanceof Error ? err : new Error(String(err));
  return JSON.stringify({ errorType: e.name || 'Error', errorMessage: e.message, trace: String(e.stack || '').split('\n') });
}

async function main() {
  const spec = process.env._HANDLER || process.argv[2] || '';
  const dot = spec.lastIndexOf('.');
  let fn;
  try {
    if (dot <= 0) throw new Error(`handler "${spec}": want file.export`);
    const mod = require(path.resolve(spec.slice(0, dot)));
    fn = mod[spec.slice(dot + 1)];
    if (typeof fn !== 'function') throw new Error(`handler "${spec}": ${spec.slice(dot + 1)} is not a function the module exports`);
  } catch (err) {
    console.error(err);
    await call('POST', '/init/error', errorBody(err), { 'Lambda-Runtime-Function-Error-Type': 'Runtime.ImportModuleError' });
    process.exit(1);
  }
  for (;;) {
    const next = await call('GET', '/invocation/next');
    const id = next.headers['lambda-runtime-aws-request-id'];
    const deadline = Number(next.headers['lambda-runtime-deadline-ms']);
    const context = {
      awsRequestId: id,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      invokedFunctionArn: next.headers['lambda-runtime-invoked-function-arn'],
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
    try {
      const result = await fn(JSON.parse(next.body), context);
      await call('POST', `/invocation/${id}/response`, JSON.stringify(result === undefined ? null : result));
    } catch (err) {
      console.error(`ERROR Invoke Error ${errorBody(err)}`);
      await call('POST', `/invocation/${id}/error`, errorBody(err), { 'Lambda-Runtime-Function-Error-Type': 'Unhandled' });
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
