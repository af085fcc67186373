#!/usr/bin/env node
// An xmppgw adapter written in JavaScript, running as its own process: it
// answers every message with "echo: <body>" from the same contact, and every
// reaction with the same reaction set on the same message, the way the
// built-in sandbox adapter does, but over the bus contract of docs/bus.md,
// so it is the model for an adapter in any language. It declares reactions
// (xmppgw's gateways.<name>.external.features: [reactions]); any other kind
// it does not know is answered feature-not-implemented, never dropped.
//
// Environment:
//   NATS_URL    NATS server(s), comma-separated (default nats://127.0.0.1:4222):
//               xmppgw's bus.listen, or the bus.url cluster
//   NATS_CREDS  optional credentials file for an external NATS
//   GATEWAY     the gateway's name, the key under gateways: (default "sms")
//
// Logs go to stderr. SIGTERM or SIGINT: finish the message in hand, hand
// the others back, drain the connection, exit 0.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const { connect, credsAuthenticator, JSONCodec } = require("nats");

const NATS_URL = process.env.NATS_URL || "nats://127.0.0.1:4222";
const GATEWAY = process.env.GATEWAY || "sms";

// The contract (docs/bus.md).
const VERSION = 1;
const STREAM_OUT = "XMPPGW_OUT";
const OUT_SUBJECT = `xmppgw.${GATEWAY}.out`;
const IN_SUBJECT = `xmppgw.${GATEWAY}.in`;
const DURABLE = `adapter_${GATEWAY}`; // created by xmppgw; we only bind to it
// The kinds of the contract: an envelope of any other kind (from a newer
// xmppgw) is answered feature-not-implemented.
const KINDS = ["message", "status", "error", "presence", "reaction", "retraction", "marker", "typing"];
// What this adapter carries to its network.
const HANDLED = ["message", "presence", "reaction"];

// Retry policy for a message we could not handle (the bus refused a
// publish): nak with an exponential delay, give up after MAX_ATTEMPTS.
const MAX_ATTEMPTS = 8;
const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 60000;

// E.164: "+", a country code that does not start with 0, up to 15 digits.
const E164 = /^\+[1-9][0-9]{6,14}$/;

const jc = JSONCodec();

// log writes one logfmt line to stderr, like xmppgw's own text log.
function log(level, msg, fields = {}) {
  const parts = [`time=${new Date().toISOString()}`, `level=${level}`, `msg=${JSON.stringify(msg)}`, `gateway=${GATEWAY}`];
  for (const [k, v] of Object.entries(fields)) {
    const s = v instanceof Error ? v.message : String(v);
    parts.push(`${k}=${/^[^\s"=]+$/.test(s) ? s : JSON.stringify(s)}`);
  }
  process.stderr.write(parts.join(" ") + "\n");
}

// validate returns what is wrong with an envelope, or null. A reader
// rejects a version newer than it knows; unknown fields are ignored.
function validate(e) {
  if (e === null || typeof e !== "object" || Array.isArray(e)) return "not a JSON object";
  if (!Number.isInteger(e.v) || e.v < 1) return 'missing version "v"';
  if (e.v > VERSION) return `version ${e.v} is newer than supported version ${VERSION}`;
  if (typeof e.kind !== "string" || e.kind === "") return 'missing "kind"';
  for (const f of ["id", "gateway", "user"]) {
    if (typeof e[f] !== "string" || e[f] === "") return `missing "${f}"`;
  }
  if (e.gateway !== GATEWAY) return `gateway ${JSON.stringify(e.gateway)} is not ${JSON.stringify(GATEWAY)}`;
  if (e.kind !== "message" && (typeof e.contact !== "string" || e.contact === "")) return 'missing "contact"';
  if (!KINDS.includes(e.kind)) return null; // answered, not validated (see settle)
  const payloads = KINDS.filter((k) => e[k] !== undefined && e[k] !== null);
  if (payloads.length !== 1 || payloads[0] !== e.kind) return `kind ${JSON.stringify(e.kind)} needs exactly the object "${e.kind}"`;
  if (typeof e[e.kind] !== "object") return `"${e.kind}" is not an object`;
  return null;
}

const bare = (jid) => jid.split("/")[0];

// envelope starts an envelope of this gateway.
function envelope(kind, user, contact, payload) {
  return { v: VERSION, kind, id: crypto.randomUUID(), gateway: GATEWAY, ts: new Date().toISOString(), user, contact, [kind]: payload };
}

// replyID is the network's message id of the echo. It is derived from the
// outbound message, so it is the same on a redelivery, and so is the
// Nats-Msg-Id "in:<id>" it is published with: JetStream stores it once.
function replyID(e) {
  return "EC" + crypto.createHash("sha256").update(`${e.user}\0${e.message.id}`).digest("hex").slice(0, 32);
}

class Refused extends Error {
  constructor(condition, type, text) {
    super(text);
    this.condition = condition;
    this.type = type;
  }
}

// handle takes one outbound envelope to the "network" and publishes what
// the network answers. It throws Refused when retrying cannot help, any
// other error when it can.
async function handle(js, e) {
  if (e.kind === "reaction") {
    // The contact reacts with the same set on the same message. Ids on
    // both subjects are the ones the XMPP user's client knows, so no
    // mapping is needed for an echo. Nats-Msg-Id from the envelope id: a
    // redelivery is stored once.
    const r = e.reaction;
    const back = envelope("reaction", bare(e.user), e.contact, { id: r.id, emoji: r.emoji || [] });
    const ack = await js.publish(IN_SUBJECT, jc.encode(back), { msgID: `in:rx-${e.id}` });
    log("INFO", "reacted", { id: e.id, contact: e.contact, emoji: (r.emoji || []).join(""), duplicate: ack.duplicate });
    return;
  }
  if (e.kind === "presence") {
    throw new Refused("feature-not-implemented", "cancel", "this network has no rooms");
  }
  const m = e.message;
  if (m.type === "groupchat") {
    throw new Refused("feature-not-implemented", "cancel", "this network has no rooms");
  }
  if (!E164.test(e.contact || "")) {
    throw new Refused("jid-malformed", "modify",
      `${JSON.stringify(e.contact || "")} is not a phone number: use E.164 form, a + and the country code, e.g. +15551234567`);
  }
  if (m.receipt) {
    const st = envelope("status", e.user, e.contact, { ref: m.id, state: "delivered" });
    await js.publish(IN_SUBJECT, jc.encode(st), { msgID: `st:${GATEWAY}:${e.id}:delivered` });
  }
  const id = replyID(e);
  const reply = envelope("message", bare(e.user), e.contact, {
    id,
    body: "echo: " + (m.body || ""),
    ...(m.thread ? { thread: m.thread } : {}),
    ...(m.media ? { media: m.media } : {}),
  });
  const ack = await js.publish(IN_SUBJECT, jc.encode(reply), { msgID: `in:${id}` });
  log("INFO", "echoed", { id: e.id, contact: e.contact, duplicate: ack.duplicate });
}

// refuse tells the XMPP sender, then acks. If the error cannot be stored,
// the message is left for redelivery: the sender must hear about it.
async function refuse(js, msg, e, r) {
  let env;
  if (e.kind === "presence") {
    env = envelope("presence", e.user, e.contact, {
      type: "error", nick: e.presence.nick || "",
      error: { condition: r.condition, type: r.type, text: r.message },
    });
  } else {
    // The stanza id of what the user sent: a message's id, a reaction's
    // or retraction's stanza_id; unknown for kinds we do not know.
    const p = e[e.kind] || {};
    const ref = e.kind === "message" ? p.id : p.stanza_id;
    env = envelope("error", e.user, e.contact, { ...(ref ? { ref } : {}), condition: r.condition, type: r.type, text: r.message });
  }
  try {
    await js.publish(IN_SUBJECT, jc.encode(env), { msgID: `err:${e.id}` });
  } catch (err) {
    log("ERROR", "could not store the error for the sender; will retry", { id: e.id, err });
    msg.nak(RETRY_BASE_MS);
    return;
  }
  log("INFO", "message refused", { id: e.id, contact: e.contact, condition: r.condition });
  if (!(await msg.ackAck().catch(() => false))) {
    log("WARN", "ack not confirmed; the message may come again (its error will not be duplicated)", { id: e.id });
  }
}

function retryDelay(attempt) {
  const d = Math.min(RETRY_BASE_MS * 2 ** (attempt - 1), RETRY_MAX_MS);
  return Math.round(d / 2 + Math.random() * d / 2); // jitter
}

// settle decodes, validates, handles and then acks, naks or terms one
// message of the durable consumer.
async function settle(js, msg) {
  let e;
  try {
    e = jc.decode(msg.data);
  } catch (err) {
    e = undefined;
  }
  const bad = validate(e);
  if (bad) {
    // Nobody can be told (we cannot trust who sent it); redelivering it
    // would fail the same way forever.
    log("ERROR", "dropping an invalid envelope", { seq: msg.seq, err: bad });
    msg.term(bad);
    return;
  }
  if (e.kind === "error") {
    // xmppgw's answer to an event of ours it could not take.
    log("WARN", "xmppgw refused an event we published", { ref: e.error.ref, condition: e.error.condition, text: e.error.text });
    msg.ack();
    return;
  }
  if (!HANDLED.includes(e.kind)) {
    // A kind this adapter does not carry (or does not know, from a newer
    // xmppgw): the sender is told, not left waiting.
    await refuse(js, msg, e, new Refused("feature-not-implemented", "cancel",
      `the echo network cannot carry ${JSON.stringify(e.kind)} events`));
    return;
  }
  const attempt = msg.info.deliveryCount;
  try {
    await handle(js, e);
  } catch (err) {
    if (err instanceof Refused) {
      await refuse(js, msg, e, err);
      return;
    }
    if (attempt >= MAX_ATTEMPTS) {
      await refuse(js, msg, e, new Refused("remote-server-timeout", "wait",
        `the network did not accept the message after ${attempt} attempts`));
      return;
    }
    const delay = retryDelay(attempt);
    log("WARN", "send failed; will retry", { id: e.id, attempt, retry_in_ms: delay, err });
    msg.nak(delay);
    return;
  }
  // Only now: the answer is stored on the bus. If this ack is lost, the
  // redelivery publishes the same Nats-Msg-Id and is stored once.
  if (!(await msg.ackAck().catch(() => false))) {
    log("WARN", "ack not confirmed; the message may come again (its answer will not be duplicated)", { id: e.id });
  }
}

// bind waits for the durable consumer, which xmppgw creates at start.
async function bind(js, stopping) {
  let told = false;
  while (!stopping()) {
    try {
      return await js.consumers.get(STREAM_OUT, DURABLE);
    } catch (err) {
      if (!told) {
        log("WARN", "waiting for the consumer (is xmppgw running with adapter: external for this gateway?)", { stream: STREAM_OUT, consumer: DURABLE, err });
        told = true;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  return null;
}

async function main() {
  const opts = {
    servers: NATS_URL.split(",").map((s) => s.trim()),
    name: `xmppgw-external-echo (${GATEWAY})`,
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
  };
  if (process.env.NATS_CREDS) {
    opts.authenticator = credsAuthenticator(fs.readFileSync(process.env.NATS_CREDS));
  }
  const nc = await connect(opts);
  log("INFO", "connected", { server: nc.getServer() });
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error") {
        log(s.type === "error" ? "ERROR" : "WARN", `nats ${s.type}`, { data: s.data });
      }
    }
  })();

  let stopping = false;
  let messages = null;
  const stop = (sig) => {
    if (stopping) return;
    stopping = true;
    log("INFO", "stopping", { signal: sig });
    if (messages) messages.close();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  const js = nc.jetstream();
  const consumer = await bind(js, () => stopping);
  if (consumer) {
    // A small batch: one message is handled at a time, and each must be
    // acknowledged within the consumer's ack wait.
    messages = await consumer.consume({ max_messages: 16 });
    (async () => {
      for await (const s of await messages.status()) {
        if (s.type === "heartbeats_missed" || s.type === "consumer_not_found" || s.type === "stream_not_found" || s.type === "consumer_deleted") {
          log("WARN", `consumer ${s.type}`, { data: s.data });
        }
      }
    })();
    if (stopping) messages.close();
    log("INFO", "consuming", { subject: OUT_SUBJECT, stream: STREAM_OUT, consumer: DURABLE });
    try {
      for await (const msg of messages) {
        if (stopping) {
          msg.nak(); // taken but not started: hand it back now, not after the ack wait
          continue;
        }
        await settle(js, msg);
      }
    } catch (err) {
      if (!stopping) {
        log("ERROR", "consuming stopped", { err });
        await nc.close();
        process.exitCode = 1;
        return;
      }
    }
  }
  // Drain: acks and publishes still buffered are flushed before closing.
  const timer = setTimeout(() => {
    log("ERROR", "drain did not finish within 10 s");
    process.exit(1);
  }, 10000);
  await nc.drain();
  clearTimeout(timer);
  log("INFO", "stopped");
}

main().catch((err) => {
  log("ERROR", "fatal", { err });
  process.exit(1);
});
