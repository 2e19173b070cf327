// Generates vectors.json: client-protocol messages serialized by RivetKit's
// own serializers (serializeWithEncoding with the versioned BARE handlers,
// zod schemas and toJson/toBare conversions the JS client uses), so that the
// Go codecs are checked against the real implementation, not a re-reading
// of it.
//
//	node rivetclient/testdata/wire/gen.mjs integration/upstream > rivetclient/testdata/wire/vectors.json
//
// The serializers are internal to RivetKit's bundle: the chunk defining them
// is copied next to itself with an export line appended, imported, and
// removed.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const root = path.resolve(process.argv[2] ?? "integration/upstream");
const dist = path.join(root, "node_modules/rivetkit/dist/tsup");
const version = JSON.parse(fs.readFileSync(path.join(root, "node_modules/rivetkit/package.json"))).version;
const chunk = fs
	.readdirSync(dist)
	.filter((f) => f.endsWith(".js"))
	.find((f) => fs.readFileSync(path.join(dist, f), "utf8").includes("var HTTP_ACTION_REQUEST_VERSIONED = "));
if (!chunk) throw new Error(`no chunk defines HTTP_ACTION_REQUEST_VERSIONED in ${dist}`);
const names = [
	"CURRENT_VERSION",
	"CLIENT_PROTOCOL_TO_SERVER",
	"CLIENT_PROTOCOL_TO_CLIENT",
	"HTTP_ACTION_REQUEST_VERSIONED",
	"HTTP_ACTION_RESPONSE_VERSIONED",
	"HTTP_QUEUE_SEND_REQUEST_VERSIONED",
	"HTTP_QUEUE_SEND_RESPONSE_VERSIONED",
	"HTTP_RESPONSE_ERROR_VERSIONED",
	"ToServerSchema",
	"ToClientSchema",
	"HttpActionRequestSchema",
	"HttpActionResponseSchema",
	"HttpQueueSendRequestSchema",
	"HttpQueueSendResponseSchema",
	"HttpResponseErrorSchema",
];
const tmp = path.join(dist, `gen-wire-${process.pid}.mjs`);
fs.writeFileSync(tmp, `${fs.readFileSync(path.join(dist, chunk), "utf8")}\nexport { ${names.join(", ")} };\n`);
let p, serde;
try {
	p = await import(pathToFileURL(tmp).href);
	serde = await import(pathToFileURL(path.join(dist, "chunk-DN6MD3KK.js")).href).catch(() => null);
} finally {
	fs.rmSync(tmp);
}
if (!serde?.serializeWithEncoding) {
	const f = fs
		.readdirSync(dist)
		.filter((f) => f.endsWith(".js"))
		.find((f) => /export \{[^}]*\bserializeWithEncoding\b/.test(fs.readFileSync(path.join(dist, f), "utf8")));
	serde = await import(pathToFileURL(path.join(dist, f)).href);
}
const { serializeWithEncoding, encodeCborCompat, bufferToArrayBuffer } = serde;

const ab = (v) => bufferToArrayBuffer(encodeCborCompat(v));
const hex = (out) => (typeof out === "string" ? { text: out } : { hex: Buffer.from(out).toString("hex") });

// Values as an actor or a caller holds them, with the compat types.
const value = { n: 5, f: 1.5, s: "héllo", big: 12345678901234567890n, bytes: new Uint8Array([1, 2, 255]), list: ["$x", 1], nil: null };
// The same value in compat form, as it travels inside CBOR (rivetkit-core
// passes values between the runtime and the client as encodeCborCompat bytes).
const compat = { n: 5, f: 1.5, s: "héllo", big: ["$BigInt", "12345678901234567890"], bytes: ["$Uint8Array", "AQL/"], list: ["$$x", 1], nil: null };
// What the Go client decodes any of them to (revived JSON).
const revived = { n: 5, f: 1.5, s: "héllo", big: "12345678901234567890", bytes: "AQL/", list: ["$x", 1], nil: null };

const kinds = {
	ToServer: [p.CLIENT_PROTOCOL_TO_SERVER, p.ToServerSchema],
	ToClient: [p.CLIENT_PROTOCOL_TO_CLIENT, p.ToClientSchema],
	HttpActionRequest: [p.HTTP_ACTION_REQUEST_VERSIONED, p.HttpActionRequestSchema],
	HttpActionResponse: [p.HTTP_ACTION_RESPONSE_VERSIONED, p.HttpActionResponseSchema],
	HttpQueueSendRequest: [p.HTTP_QUEUE_SEND_REQUEST_VERSIONED, p.HttpQueueSendRequestSchema],
	HttpQueueSendResponse: [p.HTTP_QUEUE_SEND_RESPONSE_VERSIONED, p.HttpQueueSendResponseSchema],
	HttpResponseError: [p.HTTP_RESPONSE_ERROR_VERSIONED, p.HttpResponseErrorSchema],
};

// Each case: the kind, the message for json (raw values: jsonStringifyCompat
// encodes them), for cbor (compat values, as rivetkit-core sends them), and
// for bare (Cbor fields as encodeCborCompat bytes), and the expectation.
const cases = [
	{
		name: "action request",
		kind: "ToServer",
		json: { body: { tag: "ActionRequest", val: { id: 3n, name: "increment", args: [value] } } },
		cbor: { body: { tag: "ActionRequest", val: { id: 3n, name: "increment", args: [compat] } } },
		bare: { body: { tag: "ActionRequest", val: { id: 3n, name: "increment", args: ab([value]) } } },
		expect: { id: 3, name: "increment", args: [revived] },
	},
	{
		name: "subscription request",
		kind: "ToServer",
		all: { body: { tag: "SubscriptionRequest", val: { eventName: "newCount", subscribe: true } } },
		expect: { event: "newCount", subscribe: true },
	},
	{
		name: "unsubscription request",
		kind: "ToServer",
		all: { body: { tag: "SubscriptionRequest", val: { eventName: "newCount", subscribe: false } } },
		expect: { event: "newCount", subscribe: false },
	},
	{
		name: "init",
		kind: "ToClient",
		all: { body: { tag: "Init", val: { actorId: "actor-1", connectionId: "conn-1" } } },
		expect: { tag: "Init", actorId: "actor-1", connectionId: "conn-1" },
	},
	{
		name: "action response",
		kind: "ToClient",
		json: { body: { tag: "ActionResponse", val: { id: 7n, output: value } } },
		cbor: { body: { tag: "ActionResponse", val: { id: 7n, output: compat } } },
		bare: { body: { tag: "ActionResponse", val: { id: 7n, output: ab(value) } } },
		expect: { tag: "ActionResponse", id: 7, output: revived },
	},
	{
		name: "event",
		kind: "ToClient",
		json: { body: { tag: "Event", val: { name: "newCount", args: [41, value] } } },
		cbor: { body: { tag: "Event", val: { name: "newCount", args: [41, compat] } } },
		bare: { body: { tag: "Event", val: { name: "newCount", args: ab([41, value]) } } },
		expect: { tag: "Event", name: "newCount", args: [41, revived] },
	},
	{
		name: "action error with metadata",
		kind: "ToClient",
		json: { body: { tag: "Error", val: { group: "user", code: "custom_fail", message: "boom", metadata: { a: 1 }, actionId: 9n } } },
		cbor: { body: { tag: "Error", val: { group: "user", code: "custom_fail", message: "boom", metadata: { a: 1 }, actionId: 9n } } },
		bare: { body: { tag: "Error", val: { group: "user", code: "custom_fail", message: "boom", metadata: ab({ a: 1 }), actionId: 9n, actor: null } } },
		expect: { tag: "Error", group: "user", code: "custom_fail", message: "boom", metadata: { a: 1 }, actionId: 9 },
	},
	{
		name: "connection error",
		kind: "ToClient",
		json: { body: { tag: "Error", val: { group: "auth", code: "forbidden", message: "no", actionId: null } } },
		cbor: { body: { tag: "Error", val: { group: "auth", code: "forbidden", message: "no", actionId: null } } },
		bare: { body: { tag: "Error", val: { group: "auth", code: "forbidden", message: "no", metadata: null, actionId: null, actor: null } } },
		expect: { tag: "Error", group: "auth", code: "forbidden", message: "no", metadata: null, actionId: null },
	},
	{
		name: "http action request",
		kind: "HttpActionRequest",
		json: { args: [value, 2] },
		cbor: { args: [compat, 2] },
		bare: { args: ab([value, 2]) },
		expect: { args: [revived, 2] },
	},
	{
		name: "http action response",
		kind: "HttpActionResponse",
		json: { output: value },
		cbor: { output: compat },
		bare: { output: ab(value) },
		expect: { output: revived },
	},
	{
		name: "queue send request",
		kind: "HttpQueueSendRequest",
		json: { body: value, name: "jobs", wait: true, timeout: 1500 },
		cbor: { body: compat, name: "jobs", wait: true, timeout: 1500 },
		bare: { body: ab(value), name: "jobs", wait: true, timeout: 1500n },
		expect: { body: revived, name: "jobs", wait: true, timeout: 1500 },
	},
	{
		name: "queue send response",
		kind: "HttpQueueSendResponse",
		json: { status: "completed", response: value },
		cbor: { status: "completed", response: compat },
		bare: { status: "completed", response: ab(value) },
		expect: { status: "completed", response: revived },
	},
	{
		name: "queue send timed out",
		kind: "HttpQueueSendResponse",
		json: { status: "timedOut" },
		cbor: { status: "timedOut" },
		bare: { status: "timedOut", response: null },
		expect: { status: "timedOut", response: null },
	},
	{
		name: "http error with metadata",
		kind: "HttpResponseError",
		json: { group: "user", code: "custom_fail", message: "boom", metadata: { a: 1 } },
		cbor: { group: "user", code: "custom_fail", message: "boom", metadata: { a: 1 } },
		bare: { group: "user", code: "custom_fail", message: "boom", metadata: ab({ a: 1 }), actor: null },
		expect: { group: "user", code: "custom_fail", message: "boom", metadata: { a: 1 } },
	},
];

const out = [];
for (const c of cases) {
	const [handler, schema] = kinds[c.kind];
	for (const enc of ["json", "cbor", "bare"]) {
		const msg = c[enc] ?? c.all;
		const bytes = serializeWithEncoding(enc, msg, handler, p.CURRENT_VERSION, schema, (v) => v, (v) => v);
		out.push({ name: c.name, kind: c.kind, encoding: enc, ...hex(bytes) });
	}
	// Revived BigInts are JSON numbers with all their digits.
	const expect = JSON.stringify(c.expect, (_, v) => (typeof v === "bigint" ? Number(v) : v)).replaceAll('"12345678901234567890"', "12345678901234567890");
	out.push({ name: c.name, kind: c.kind, encoding: "expect", text: expect });
}
process.stdout.write(`${JSON.stringify({ rivetkit: version, vectors: out }, null, "\t")}\n`);
