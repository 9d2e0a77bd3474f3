// node-soap as an independent client of DeclarationService (tests/e2e/test_soap_node.py).
//
//   node client.js WSDL_URL OPERATION SIGNED_ELEMENT_FILE
//
// Builds the client from the served WSDL, sends the signed element unchanged
// inside the operation's wrapper ($xml: raw XML, so the signature survives),
// and prints one JSON object: {"result": <what node-soap parsed>, "raw": <the
// response envelope as received>}. Exit 1 with the error on stderr otherwise.
"use strict";
const fs = require("fs");
const soap = require("soap");

async function main() {
  const [wsdlUrl, operation, file] = process.argv.slice(2);
  const signed = fs.readFileSync(file, "utf8").replace(/^<\?xml[^>]*\?>\s*/, "");
  const client = await soap.createClientAsync(wsdlUrl);
  const [result, raw] = await client[operation + "Async"]({ $xml: signed });
  process.stdout.write(JSON.stringify({ result, raw }));
}

main().catch((error) => {
  process.stderr.write(String((error && error.stack) || error) + "\n");
  if (error && error.body) process.stderr.write(String(error.body) + "\n");
  process.exit(1);
});
