// Helpers for the interop test: the running stack (its endpoints, `stack` commands), sign-up and
// login over HTTP, stock y-websocket clients, our Rust client (`stack-edit`) as a child process,
// the stored document (the balancer's docs route), and the two-agent trace replayed offline.

import { spawn, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { createInterface } from 'node:readline'
import { randomBytes, randomInt } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const HERE = path.dirname(fileURLToPath(import.meta.url))
export const REPO = path.resolve(HERE, '..')

/** The one text every document of the stack holds (scenarios::stack::ydoc::TEXT). */
export const TEXT = 'content'

export function dataDir () {
  const dir = process.env.STACK_DATA_DIR
  if (!dir) {
    throw new Error('set STACK_DATA_DIR to the data dir of a running `cargo stack up` (default target/stack)')
  }
  return path.resolve(dir)
}

/** The balancers' URLs from endpoints.json: [{ name, http, ws }]. */
export function balancers () {
  const endpoints = JSON.parse(readFileSync(path.join(dataDir(), 'endpoints.json'), 'utf8'))
  return endpoints.balancers
}

/** Runs `stack <args> --data-dir D` (STACK_BIN, else `cargo stack` in the repo); its stdout. */
export function stack (...args) {
  const bin = process.env.STACK_BIN && path.resolve(process.env.STACK_BIN)
  const [cmd, pre] = bin ? [bin, []] : ['cargo', ['stack']]
  const withDir = args[0] === 'owner' ? args : [...args, '--data-dir', dataDir()]
  return execFileSync(cmd, [...pre, ...withDir], { cwd: REPO, encoding: 'utf8' }).trim()
}

/** A fresh tenant name per run, so the test can run again against the same stack. */
export function freshTenant () {
  return 'interop-' + randomBytes(4).toString('hex')
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` (which returns a falsy value or throws while not yet true) until it holds. */
export async function eventually (what, check, timeoutMs = 30_000, pollMs = 200) {
  const until = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      const v = await check()
      if (v) return v
      last = 'not yet'
    } catch (e) {
      last = e
    }
    if (Date.now() > until) throw new Error(`${what}: not reached within ${timeoutMs} ms (last: ${last?.stack ?? last})`)
    await sleep(pollMs)
  }
}

/** A POST with a JSON body, retried while the answer is a 5xx (an instance still starting). */
export async function post (http, route, body, token) {
  const headers = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  return eventually(`POST ${route}`, async () => {
    const res = await fetch(http + route, { method: 'POST', headers, body: JSON.stringify(body) })
    const text = await res.text()
    if (res.status >= 500) throw new Error(`${res.status} ${text}`)
    return { status: res.status, text }
  })
}

/** Signs a user up (the tenant's first is its admin) and logs in: the token. */
export async function signIn (http, tenant, user) {
  const creds = { tenant, user, password: 'correct horse battery ' + user }
  const up = await post(http, '/auth/signup', creds)
  if (up.status !== 201) throw new Error(`sign-up of ${user}: ${up.status} ${up.text}`)
  const login = await post(http, '/auth/login', creds)
  if (login.status !== 200) throw new Error(`login of ${user}: ${login.status} ${login.text}`)
  return JSON.parse(login.text).token
}

/** A state vector as a canonical JSON string ({client: clock}, clients in numeric order). */
export function svKey (entries) {
  const pairs = [...entries].map(([c, k]) => [String(c), Number(k)]).filter(([, k]) => k > 0)
  pairs.sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : 1))
  return JSON.stringify(Object.fromEntries(pairs))
}

export function svOf (doc) {
  return svKey(Y.decodeStateVector(Y.encodeStateVector(doc)))
}

/** Whether state vector `a` (a Map) covers `b`. */
export function covers (a, b) {
  for (const [c, k] of b) if ((a.get(c) ?? 0) < k) return false
  return true
}

/** A stock Yjs client: a Y.Doc and a y-websocket provider through one balancer. */
export function stockClient (ws, tenant, doc, token) {
  const ydoc = new Y.Doc()
  const params = token === undefined ? {} : { token }
  const provider = new WebsocketProvider(`${ws}/collab/${tenant}`, doc, ydoc, {
    params,
    WebSocketPolyfill: WebSocket,
    // Node's global BroadcastChannel would otherwise sync the providers of this process
    // with each other without any server.
    disableBc: true,
    maxBackoffTime: 500
  })
  const events = { closes: [], errors: 0, syncs: 0 }
  provider.on('connection-close', (e) => events.closes.push(e?.code ?? null))
  provider.on('connection-error', () => { events.errors++ })
  provider.on('sync', (synced) => { if (synced) events.syncs++ })
  const text = ydoc.getText(TEXT)
  return {
    ydoc,
    provider,
    text,
    events,
    str: () => text.toString(),
    sv: () => svOf(ydoc),
    synced: () => eventually('the stock client syncs', () => provider.synced),
    destroy: () => {
      if (ydoc.isDestroyed) return
      provider.destroy()
      ydoc.destroy()
    }
  }
}

/** One random edit of a text, as a person types: a short word inserted, sometimes a few deleted. */
export function randomEdit (text) {
  const len = text.length
  const pos = randomInt(len + 1)
  if (len > 0 && pos < len && Math.random() < 0.25) {
    text.delete(pos, Math.min(1 + randomInt(3), len - pos))
  } else {
    const n = 1 + randomInt(4)
    let word = ''
    for (let i = 0; i < n; i++) word += String.fromCharCode(97 + randomInt(26))
    text.insert(pos, word)
  }
}

/** Types `n` random edits, one every `gapMs`. */
export async function typeRandom (client, n, gapMs = 10) {
  for (let i = 0; i < n; i++) {
    randomEdit(client.text)
    await sleep(gapMs)
  }
}

/** The document as stored: GET /docs/<tenant>/<doc>/state through a balancer. */
export async function stored (http, tenant, doc) {
  const res = await fetch(`${http}/docs/${tenant}/${doc}/state`)
  if (res.status !== 200) throw new Error(`docs state: ${res.status} ${await res.text()}`)
  const ydoc = new Y.Doc()
  Y.applyUpdate(ydoc, new Uint8Array(await res.arrayBuffer()))
  return { text: ydoc.getText(TEXT).toString(), sv: svOf(ydoc), header: res.headers.get('x-state-vector') }
}

/** Our Rust y-sync client (`stack-edit`), driven over its stdin and stdout. */
export class RustClient {
  constructor (ws, tenant, doc, token, seed) {
    const bin = process.env.STACK_EDIT_BIN && path.resolve(process.env.STACK_EDIT_BIN)
    const args = ['--ws', ws, '--tenant', tenant, '--doc', doc, '--token', token, '--seed', String(seed)]
    const [cmd, all] = bin
      ? [bin, args]
      : ['cargo', ['run', '--quiet', '--release', '-p', 'runtime', '--bin', 'stack-edit', '--', ...args]]
    this.child = spawn(cmd, all, { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] })
    this.events = []
    this.waiters = []
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)))
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const event = JSON.parse(line)
      this.events.push(event)
      this.waiters = this.waiters.filter((w) => !w(event))
    })
  }

  /** The next event of `kind` (after now). */
  next (kind) {
    return new Promise((resolve) => this.waiters.push((e) => e.event === kind && (resolve(e), true)))
  }

  count (kind) {
    return this.events.filter((e) => e.event === kind).length
  }

  async type (n) {
    const done = this.next('typed')
    this.child.stdin.write(`type ${n}\n`)
    await done
  }

  async state () {
    const reply = this.next('state')
    this.child.stdin.write('state\n')
    const s = await reply
    const entries = Object.entries(s.sv).map(([c, k]) => [Number(c), k])
    return { ...s, sv: svKey(entries), svMap: new Map(entries) }
  }

  async quit () {
    this.child.stdin.write('quit\n')
    return this.exited
  }
}

/** The two-agent trace (scenarios/data/editing-traces, CC BY 4.0: see ATTRIBUTION.md there). */
export function friendsTrace () {
  const gz = readFileSync(path.join(REPO, 'scenarios/data/editing-traces/friendsforever.json.gz'))
  return JSON.parse(gunzipSync(gz).toString('utf8'))
}

/**
 * The first `n` transactions replayed offline, as scenarios::stack::trace::replay_concurrent
 * does: one Y.Doc per agent (client ids `ids`, increasing: concurrent inserts at one place are
 * ordered by client id, and the published content puts agent 0 first), brought to the merge
 * of each transaction's parents before it is typed. Each step keeps its update and the state
 * vector its agent's copy held; the merged text of all steps is the expected result.
 */
export function replayConcurrent (trace, n, ids) {
  const docs = ids.map((id) => { const d = new Y.Doc(); d.clientID = id; return d })
  const applied = ids.map(() => new Set())
  const steps = []
  for (let i = 0; i < n; i++) {
    const txn = trace.txns[i]
    const a = txn.agent ?? 0
    const doc = docs[a]
    const missing = []
    const stackOf = [...(txn.parents ?? [])]
    while (stackOf.length) {
      const j = stackOf.pop()
      if (j >= i) throw new Error(`trace order is not causal at ${i}`)
      if (!applied[a].has(j)) {
        applied[a].add(j)
        missing.push(j)
        stackOf.push(...(trace.txns[j].parents ?? []))
      }
    }
    missing.sort((x, y) => x - y)
    for (const j of missing) if (steps[j].update) Y.applyUpdate(doc, steps[j].update)
    const needs = Y.decodeStateVector(Y.encodeStateVector(doc))
    let update = null
    const keep = (u) => { update = u }
    doc.on('update', keep)
    doc.transact(() => {
      const text = doc.getText(TEXT)
      for (const [pos, del, ins] of txn.patches) {
        if (del > 0) text.delete(pos, del)
        if (ins.length > 0) text.insert(pos, ins)
      }
    })
    doc.off('update', keep)
    applied[a].add(i)
    steps.push({ agent: a, needs, update })
  }
  const all = new Y.Doc()
  for (const s of steps) if (s.update) Y.applyUpdate(all, s.update)
  return { steps, text: all.getText(TEXT).toString(), sv: svOf(all) }
}
