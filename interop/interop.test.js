// Stock Yjs clients (yjs, y-protocols, y-websocket, ws: the pinned versions of package.json)
// against the stack on the real runtime, with our Rust y-sync client in the same document.
//
//   STACK_DATA_DIR=../target/stack node --test        (against a running `cargo stack up`)
//
// STACK_DATA_DIR: the running stack's data dir (its endpoints.json); STACK_BIN and
// STACK_EDIT_BIN: the `stack` and `stack-edit` binaries (else `cargo stack` and
// `cargo run --release -p runtime --bin stack-edit`). runtime/tests/node_interop.rs sets all three.
//
// Each run signs up a fresh tenant, so it can run again against the same stack. The tests run
// in order (one file, node:test runs its tests one after another); the last one kills and
// restarts the document's collaboration instance.

import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'

import WebSocket from 'ws'
import * as Y from 'yjs'

import {
  balancers, stack, freshTenant, signIn, post, stockClient, typeRandom, stored, RustClient,
  friendsTrace, replayConcurrent, eventually, covers, sleep, svKey
} from './stack.js'

const lbs = balancers()
const lb = (i) => lbs[i % lbs.length]
const tenant = freshTenant()
let admin
let bob
const open = []
after(() => { for (const c of open) c.destroy() })

function client (i, doc, token) {
  const c = stockClient(lb(i).ws, tenant, doc, token)
  open.push(c)
  return c
}

/** Every client has `want`'s text and state vector. */
function converged (clients, rust) {
  return async () => {
    const [first, ...rest] = clients
    for (const c of rest) if (c.str() !== first.str() || c.sv() !== first.sv()) return false
    if (rust) {
      const r = await rust.state()
      if (r.text !== first.str() || r.sv !== first.sv()) return false
    }
    return true
  }
}

/** The stored document (after a quiet period) holds exactly what `c` holds. */
async function storedEquals (c, doc) {
  return eventually(`the stored ${doc} equals the clients'`, async () => {
    const s = await stored(lb(0).http, tenant, doc)
    return s.text === c.str() && s.sv === c.sv() && s
  }, 45_000)
}

test('sign-up and login through the balancers', async () => {
  admin = await signIn(lb(0).http, tenant, 'ada')
  assert.ok(admin.split('.').length === 3, 'a JWT')
  // A second user, who may write the documents the admin grants him and no other.
  bob = await signIn(lb(1).http, tenant, 'bob')
  for (const doc of ['friends', 'notes']) {
    const granted = await post(lb(2).http, '/auth/grant', { user: 'bob', doc, perm: 'write' }, admin)
    assert.equal(granted.status, 200, granted.text)
  }
  const byBob = await post(lb(0).http, '/auth/grant', { user: 'bob', doc: 'secret', perm: 'write' }, bob)
  assert.equal(byBob.status, 403, 'only the admin grants')
})

test('a client without a valid token is refused and never syncs', async () => {
  // At the handshake: the server answers HTTP 401 instead of upgrading.
  for (const query of ['', '?token=', '?token=eyJhbGciOiJIUzI1NiJ9.eyJ0ZW5hbnQiOiJhY21lIn0.Zm9yZ2Vk']) {
    const status = await new Promise((resolve) => {
      const ws = new WebSocket(`${lb(0).ws}/collab/${tenant}/secret${query}`)
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode); ws.terminate() })
      ws.on('open', () => { resolve('open'); ws.close() })
      ws.on('error', () => {})
    })
    assert.equal(status, 401, `handshake with ${JSON.stringify(query)}`)
  }
  // A valid token without a permission on the document: 403.
  const status = await new Promise((resolve) => {
    const ws = new WebSocket(`${lb(0).ws}/collab/${tenant}/secret?token=${bob}`)
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode); ws.terminate() })
    ws.on('open', () => { resolve('open'); ws.close() })
    ws.on('error', () => {})
  })
  assert.equal(status, 403, 'bob has no grant on secret')
  // A stock client holding the document's content, and two without a valid token.
  const good = client(0, 'secret', admin)
  await good.synced()
  good.text.insert(0, 'for ada only')
  const forged = client(1, 'secret', admin.slice(0, -4) + 'AAAA')
  const absent = client(2, 'secret', undefined)
  await eventually('both refused clients saw their connection fail', () =>
    forged.events.closes.length + forged.events.errors >= 2 && absent.events.closes.length + absent.events.errors >= 2)
  await sleep(1_000)
  console.log(`refused clients: forged token closes ${JSON.stringify(forged.events.closes)}, no token closes ${JSON.stringify(absent.events.closes)}`)
  for (const c of [forged, absent]) {
    assert.equal(c.provider.synced, false)
    assert.equal(c.events.syncs, 0)
    assert.equal(c.str(), '')
    c.destroy()
  }
})

test('awareness (presence) travels between stock clients, to one that joins later too', async () => {
  const a = client(0, 'presence', admin)
  await a.synced()
  a.provider.awareness.setLocalStateField('user', { name: 'ada', cursor: 3 })
  const b = client(1, 'presence', admin)
  await b.synced()
  await eventually('b sees a\'s presence', () => b.provider.awareness.getStates().get(a.ydoc.clientID)?.user?.name === 'ada')
  b.provider.awareness.setLocalStateField('user', { name: 'bob' })
  await eventually('a sees b\'s presence', () => a.provider.awareness.getStates().get(b.ydoc.clientID)?.user?.name === 'bob')
  b.destroy()
  await eventually('a sees b leave', () => !a.provider.awareness.getStates().has(b.ydoc.clientID), 15_000)
})

test('emoji, other scripts and a 300 KB paste converge with the stored document', { timeout: 60_000 }, async () => {
  const doc = 'unicode'
  const [a, b] = [client(0, doc, admin), client(2, doc, admin)]
  await Promise.all([a.synced(), b.synced()])
  const pieces = ['😀', '👩‍💻', 'é', 'e\u0301', '日本語', 'Ω', '𝄞', ' ']
  const typeUnicode = async (c) => {
    for (let i = 0; i < 60; i++) {
      const len = c.text.length
      // Yjs counts UTF-16 units: a position or deletion may split a surrogate pair.
      if (len > 0 && Math.random() < 0.3) {
        const pos = randomInt(len)
        c.text.delete(pos, Math.min(1 + randomInt(3), len - pos))
      } else {
        c.text.insert(randomInt(len + 1), pieces[randomInt(pieces.length)])
      }
      await sleep(5)
    }
  }
  await Promise.all([typeUnicode(a), typeUnicode(b)])
  a.text.insert(0, 'x'.repeat(300_000))
  await eventually('the unicode clients converge', converged([a, b]))
  await storedEquals(a, doc)
})

test('the offline replay of the whole two-agent trace ends at its published content', () => {
  const trace = friendsTrace()
  assert.equal(replayConcurrent(trace, trace.txns.length, [11, 22]).text, trace.endContent)
})

test('two stock clients replay the two-agent trace concurrently and converge with the stored document', { timeout: 90_000 }, async () => {
  const n = 300
  const trace = friendsTrace()
  let ids
  do {
    ids = [1 + randomInt(2 ** 31), 1 + randomInt(2 ** 31)].sort((a, b) => a - b)
  } while (ids[0] === ids[1])
  const replay = replayConcurrent(trace, n, ids)
  // The stock clients send the agents' updates (authored by the agents' client ids, not
  // their own: Yjs takes a remote update under its own id for a clash and changes its id).
  const agents = ids.map((_, a) => client(a, 'friends', a === 0 ? admin : bob))
  await Promise.all(agents.map((c) => c.synced()))
  // Each agent types its steps in order, each once its copy holds what the step was typed on.
  await Promise.all(agents.map(async (c, a) => {
    for (const step of replay.steps.filter((s) => s.agent === a)) {
      await eventually(`agent ${a} sees a step's parents`, () =>
        covers(Y.decodeStateVector(Y.encodeStateVector(c.ydoc)), step.needs), 30_000, 5)
      if (step.update) Y.applyUpdate(c.ydoc, step.update)
      await sleep(2)
    }
  }))
  await eventually('the trace agents converge', converged(agents))
  assert.equal(agents[0].str(), replay.text, 'the text of the offline replay')
  assert.equal(agents[0].sv(), replay.sv)
  await storedEquals(agents[0], 'friends')
})

test('stock clients and the Rust client edit one document, through an outage of its collaboration instance', { timeout: 120_000 }, async () => {
  const doc = 'notes'
  const stock = [0, 1, 2].map((i) => client(i, doc, i === 1 ? bob : admin))
  const rust = new RustClient(lb(1).ws, tenant, doc, admin, randomInt(2 ** 31))
  let killed = null
  try {
    await Promise.all(stock.map((c) => c.synced()))
    await eventually('the Rust client syncs', () => rust.count('synced') > 0)

    // Everyone types at once.
    await Promise.all([...stock.map((c) => typeRandom(c, 60)), rust.type(60)])
    await eventually('stock and Rust clients converge', converged(stock, rust))
    await storedEquals(stock[0], doc)

    // The owner dies; the clients keep typing; they reconnect by themselves through the
    // balancers (the surviving instance takes the document over) and the outage's edits
    // reach everyone and the store.
    const owner = stack('owner', `${tenant}/${doc}`)
    assert.match(owner, /^collab-\d+$/)
    const closesBefore = stock.map((c) => c.events.closes.length)
    const rustLost = rust.count('disconnected')
    assert.match(stack('kill', owner), /killed/)
    killed = owner
    const outage = Date.now()
    await Promise.all([...stock.map((c) => typeRandom(c, 30)), rust.type(30)])
    const typed = stock.map((c) => Y.decodeStateVector(Y.encodeStateVector(c.ydoc)))
    const rustTyped = await rust.state()
    const dropped = stock.filter((c, i) => c.events.closes.length > closesBefore[i]).length +
      (rust.count('disconnected') > rustLost ? 1 : 0)
    const rustSv = rustTyped.svMap
    await eventually('the edits of the outage reach every client', async () => {
      const r = await rust.state()
      const rSv = r.svMap
      for (const c of stock) {
        const sv = Y.decodeStateVector(Y.encodeStateVector(c.ydoc))
        if (!typed.every((t) => covers(sv, t)) || !covers(sv, rustSv)) {
          throw new Error(`a stock client lacks outage edits (typed: ${typed.map((t) => svKey(t)).join(' ')}; rust typed ${rustTyped.sv}): ${stock.map((x) => `${x.sv()} connected=${x.provider.wsconnected} synced=${x.provider.synced}`).join(' | ')}; rust ${r.sv} connected=${r.connected} synced=${r.synced}`)
        }
      }
      if (!typed.every((t) => covers(rSv, t))) throw new Error(`the Rust client lacks outage edits: ${r.sv}`)
      return converged(stock, rust)()
    }, 60_000)
    const healed = Date.now() - outage
    await storedEquals(stock[0], doc)
    console.log(`outage of ${owner}: ${dropped} of 4 clients lost their connection; converged ${healed} ms after the kill`)
    assert.ok(dropped >= 1, 'the kill cut some client off')

    assert.match(stack('restart', owner), /healthy/)
    killed = null
    await typeRandom(stock[2], 10)
    await eventually('converged after the restart', converged(stock, rust))
    await storedEquals(stock[0], doc)
    const r = await rust.state()
    assert.equal(r.unacked, 0, 'every insertion of the Rust client is acknowledged')
  } finally {
    if (killed) stack('restart', killed)
    assert.equal(await rust.quit(), 0, 'stack-edit exits 0')
  }
})
