// jsoracle.js computes, in a real JavaScript engine, what TopGun's TypeScript
// client computes for the inputs Go sends on stdin, so the Go tests can check
// the merkle package against it. Run by `go test ./server/merkle -update-js`
// (needs node on PATH); the output is testdata/js_vectors.json.
//
// Values arrive tagged, as the client would hold them after decoding the wire
// msgpack in a browser: int → Number (of the BigInt msgpackr yields for 64-bit
// integers), float → number, bytes → Uint8Array, map → plain object.
'use strict';

function toJS(t) {
  if ('null' in t) return null;
  if ('bool' in t) return t.bool;
  if ('int' in t) return Number(BigInt(t.int));
  if ('float' in t) {
    const dv = new DataView(new ArrayBuffer(8));
    dv.setBigUint64(0, BigInt('0x' + t.float));
    return dv.getFloat64(0);
  }
  if ('str' in t) return t.str;
  if ('bytes' in t) return new Uint8Array(t.bytes);
  if ('arr' in t) return t.arr.map(toJS);
  if ('map' in t) {
    const o = {};
    for (const [k, v] of t.map) o[k] = toJS(v);
    return o;
  }
  throw new Error('bad tagged value ' + JSON.stringify(t));
}

// The client's functions (core/src/utils/hash.ts, core/src/ORMapMerkle.ts,
// core/src/MerkleTree.ts), restated.
function hashString(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function mix(h) {
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h >>> 0;
}

function combine(hs) {
  let r = 0;
  for (const h of hs) r = (r + mix(h)) | 0;
  return r >>> 0;
}

function stringifyValue(v) {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'object') return JSON.stringify(v, Object.keys(v).sort());
  return String(v);
}

function hashORMapEntry(key, records) {
  const byTag = new Map();
  for (const r of records) byTag.set(r.tag, r);
  const parts = ['key:' + key];
  for (const tag of Array.from(byTag.keys()).sort()) {
    const r = byTag.get(tag);
    let s = `${tag}:${stringifyValue(r.value)}:${r.timestamp.millis}:${r.timestamp.counter}:${r.timestamp.nodeId}`;
    if (r.ttlMs !== undefined) s += `:ttl=${r.ttlMs}`;
    parts.push(s);
  }
  return hashString(parts.join('|'));
}

// A client MerkleTree (depth 3), nodes never pruned.
class Tree {
  constructor() { this.root = { hash: 0, children: {} }; }
  path(key) { return hashString(key).toString(16).padStart(8, '0'); }
  update(key, itemHash) { this.upd(this.root, key, itemHash, this.path(key), 0); }
  upd(node, key, h, p, level) {
    if (level >= 3) {
      if (!node.entries) node.entries = new Map();
      node.entries.set(key, h);
      node.hash = combine([...node.entries.values()]);
      return;
    }
    const c = p[level];
    if (!node.children) node.children = {};
    if (!node.children[c]) node.children[c] = { hash: 0 };
    this.upd(node.children[c], key, h, p, level + 1);
    node.hash = combine(Object.values(node.children).map((x) => x.hash));
  }
  remove(key) { this.rem(this.root, key, this.path(key), 0); }
  rem(node, key, p, level) {
    if (level >= 3) {
      if (node.entries) {
        node.entries.delete(key);
        node.hash = combine([...node.entries.values()]);
      }
      return;
    }
    const c = p[level];
    if (node.children && node.children[c]) this.rem(node.children[c], key, p, level + 1);
    node.hash = node.children ? combine(Object.values(node.children).map((x) => x.hash)) : 0;
  }
  buckets(path) {
    let n = this.root;
    for (const ch of path) {
      if (!n.children || !n.children[ch]) return {};
      n = n.children[ch];
    }
    if (!n.children) return {};
    const out = {};
    for (const [k, x] of Object.entries(n.children)) out[k] = x.hash;
    return out;
  }
}

function ts(t) { return { millis: Number(BigInt(t.millis)), counter: t.counter, nodeId: t.nodeId }; }

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = { numbers: [], values: [], strings: [], lww: [], or: [], trees: [] };
for (const f of input.numbers) {
  out.numbers.push({ float: f, text: String(toJS({ float: f })) });
}
for (const v of input.values) {
  out.values.push({ value: v, text: stringifyValue(toJS(v)) });
}
for (const s of input.strings) {
  out.strings.push({ str: s, fnv: hashString(s) });
}
out.sorted = [...input.strings].sort();
for (const c of input.lww) {
  const t = ts(c.ts);
  out.lww.push({ ...c, hash: hashString(`${c.key}:${t.millis}:${t.counter}:${t.nodeId}`) });
}
for (const c of input.or) {
  const recs = c.records.map((r) => {
    const x = { value: toJS(r.value), tag: r.tag, timestamp: ts(r.ts) };
    if (r.ttl !== undefined) x.ttlMs = Number(BigInt(r.ttl));
    return x;
  });
  out.or.push({ ...c, hash: hashORMapEntry(c.key, recs) });
}
for (const c of input.trees) {
  const tree = new Tree();
  for (const op of c.ops) {
    if (op.remove) tree.remove(op.key); else tree.update(op.key, op.hash);
  }
  const buckets = { '': tree.buckets('') };
  for (const a of Object.keys(buckets[''])) {
    buckets[a] = tree.buckets(a);
    for (const b of Object.keys(buckets[a])) buckets[a + b] = tree.buckets(a + b);
  }
  out.trees.push({ ...c, root: tree.root.hash, buckets });
}
process.stdout.write(JSON.stringify(out) + '\n');
