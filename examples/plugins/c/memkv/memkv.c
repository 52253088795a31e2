/*
 * memkv: an in-memory TopGun storage plugin written in C.
 *
 * It implements the wasm storage ABI 1.0 (abi/WASM.md) without the Go SDK,
 * to show that the ABI is language-neutral. Build it as a WASI reactor:
 *
 *   clang @examples/plugins/c/memkv/flags.rsp -o memkv.wasm examples/plugins/c/memkv/memkv.c
 *
 * (flags.rsp holds --target=wasm32-wasi -mexec-model=reactor -O2 ...).
 *
 * The store is one array of records sorted by (map name, backup flag, key)
 * in byte order, so get is a binary search, scan is a binary search and a
 * walk, and list_maps is one walk. apply is atomic: it decodes and validates
 * every mutation, allocates everything the batch needs, and only then
 * merges the batch into a new sorted array, a step that cannot fail. The
 * plugin declares only atomic_batch: it is not durable, keeps its data in
 * linear memory (so the host runs one instance) and has no expiry index
 * (list_expired sorts the expiring records on each call).
 *
 * Requests are read from the scratch buffer with a small, bounds-checked
 * msgpack reader; responses are built in a second buffer and copied into
 * the scratch buffer (or swapped with it when they do not fit, reported
 * with the buffer-moved status). Bad input of any kind is answered with an
 * error code, never a trap; the code is not recursive, because a C stack
 * overflow in wasm32 silently corrupts memory instead of trapping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The ABI: versions, ops, codes and the limits of abi/limits.go ---- */

#define ABI_MAJOR 1
#define ABI_MINOR 0
#define CAP_ATOMIC_BATCH 4u

enum { OP_DESCRIBE = 1, OP_OPEN, OP_APPLY, OP_GET, OP_SCAN, OP_LIST_MAPS, OP_LIST_EXPIRED, OP_CLOSE };

enum {
	CODE_OK = 0,
	CODE_INVALID_ARGUMENT = 2,
	CODE_CONFLICT = 3,
	CODE_UNAVAILABLE = 4,
	CODE_UNSUPPORTED = 5,
	CODE_RESOURCE_EXHAUSTED = 6,
};

#define STATUS_BUFFER_MOVED 0x10000u

#define MAX_MAP_NAME_BYTES 512u
#define MAX_KEY_BYTES 2048u
#define MAX_VALUE_BYTES (8u << 20)
#define MAX_BATCH_OPS 100000u
#define MAX_GET_KEYS 100000u
#define MAX_MAPS (1u << 20) /* the most names a list_maps response may hold */
#define DEFAULT_SCAN_LIMIT 1000
#define DEFAULT_SCAN_BYTES (8 << 20)
#define MAX_ERROR_BYTES 4096u

/* The scratch buffer is never smaller than this, so an error message
 * (at most MAX_ERROR_BYTES) always fits in it. */
#define MIN_BUFFER (64u << 10)
/* Neither buffer grows past this (the host's request and response limits
 * are at most 1 GiB). */
#define MAX_BUFFER (1u << 30)

/* The one host import: log(level, ptr, len). Levels 1 trace .. 5 error. */
__attribute__((import_module("topgun_v1"), import_name("log"))) extern void
host_log(int32_t level, const char *ptr, int32_t len);

static void log_line(int32_t level, const char *msg) { host_log(level, msg, (int32_t)strlen(msg)); }

/* ---- Errors ---- */

/* errmsg holds the message of the failing call; fail() formats it and
 * returns the code, so handlers end with `return fail(CODE, ...)`.
 * Messages are ASCII: user bytes go through quote(). */
static char errmsg[MAX_ERROR_BYTES];

__attribute__((format(printf, 2, 3))) static int fail(int code, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof errmsg, fmt, ap);
	va_end(ap);
	return code;
}

/* quote returns s as a double-quoted ASCII string for a message: bytes
 * outside printable ASCII become \xNN, and long strings are cut with their
 * length appended. Two calls may be used in one message (two buffers). */
static const char *quote(const uint8_t *s, uint32_t n) {
	static char bufs[2][200];
	static int next;
	char *out = bufs[next], *o = out;
	next ^= 1;
	*o++ = '"';
	uint32_t i = 0;
	for (; i < n && o < out + 160; i++) {
		uint8_t c = s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			*o++ = (char)c;
		} else {
			o += snprintf(o, 5, "\\x%02x", c);
		}
	}
	*o++ = '"';
	if (i < n) {
		snprintf(o, 24, "...(%u bytes)", (unsigned)n);
	} else {
		*o = 0;
	}
	return out;
}

/* ---- Byte strings: order and validation ---- */

/* cmpb compares in byte order, the order of Go's string comparison. It
 * compares 8 bytes at a time (wasm32 is little-endian: byte-swapped words
 * compare like their bytes), since wasi-libc's memcmp goes byte by byte and
 * comparisons are most of the cost of sorting a batch. */
static int cmpb(const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn) {
	uint32_t n = an < bn ? an : bn, i = 0;
	for (; n - i >= 8; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y) {
			return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
		}
	}
	for (; i < n; i++) {
		if (a[i] != b[i]) {
			return a[i] < b[i] ? -1 : 1;
		}
	}
	return an < bn ? -1 : an > bn;
}

/* valid_utf8 accepts exactly the well-formed UTF-8 of Unicode table 3-7
 * (as Go's utf8.Valid does): no overlong forms, no surrogates, nothing
 * above U+10FFFF. */
static int valid_utf8(const uint8_t *s, uint32_t n) {
	uint32_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		uint32_t len;
		uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			lo = c == 0xe0 ? 0xa0 : 0x80;
			hi = c == 0xed ? 0x9f : 0xbf;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			lo = c == 0xf0 ? 0x90 : 0x80;
			hi = c == 0xf4 ? 0x8f : 0xbf;
		} else {
			return 0;
		}
		if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
			return 0;
		}
		for (uint32_t j = 2; j < len; j++) {
			if ((s[i + j] & 0xc0) != 0x80) {
				return 0;
			}
		}
		i += len;
	}
	return 1;
}

/* where returns the start of a message about mutation i of a batch
 * ("mutation 3: "), or "" for i < 0. */
static const char *where(int64_t i) {
	static char w[32];
	w[0] = 0;
	if (i >= 0) {
		snprintf(w, sizeof w, "mutation %lld: ", (long long)i);
	}
	return w;
}

/* check_name validates a map name (what = "map name": non-empty) or a key
 * (what = "key"), as abi.ValidateMapName and abi.ValidateKey do; at is the
 * position of the mutation in its batch, or -1. */
static int check_name(int64_t at, const char *what, const uint8_t *s, uint32_t n, uint32_t max) {
	if (n == 0 && max == MAX_MAP_NAME_BYTES) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: %s%s is empty", where(at), what);
	}
	if (n > max) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: %s%s %s is %u bytes, the limit is %u", where(at), what, quote(s, n), (unsigned)n,
			    (unsigned)max);
	}
	if (!valid_utf8(s, n)) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: %s%s %s is not valid UTF-8", where(at), what, quote(s, n));
	}
	if (n > 0 && memchr(s, 0, n) != NULL) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: %s%s %s contains a NUL byte", where(at), what, quote(s, n));
	}
	return CODE_OK;
}

/* ---- msgpack reader ----
 *
 * A reader walks [p, end). Every read checks the bytes left; on malformed
 * input it sets err and returns zero values from then on, so a decoder
 * reads all fields and checks err once. An array or map header longer than
 * the bytes left (every element takes at least one byte) is malformed, so
 * lengths are bounded by the request size. */
typedef struct {
	const uint8_t *p, *end;
	int err;
} reader;

static int rd_need(reader *r, uint32_t n) {
	if (r->err || (size_t)(r->end - r->p) < n) {
		r->err = 1;
		return 0;
	}
	return 1;
}

static uint32_t rd_left(const reader *r) { return (uint32_t)(r->end - r->p); }

/* rd_be reads an n-byte big-endian unsigned number. */
static uint64_t rd_be(reader *r, uint32_t n) {
	if (!rd_need(r, n)) {
		return 0;
	}
	uint64_t v = 0;
	for (uint32_t i = 0; i < n; i++) {
		v = v << 8 | r->p[i];
	}
	r->p += n;
	return v;
}

static uint8_t rd_byte(reader *r) { return (uint8_t)rd_be(r, 1); }

/* rd_num reads an integer of any msgpack width, signed or unsigned. It
 * returns the value's bits and sets *neg for a negative value. */
static uint64_t rd_num(reader *r, int *neg) {
	*neg = 0;
	uint8_t c = rd_byte(r);
	int64_t s;
	if (r->err) {
		return 0;
	}
	if (c <= 0x7f) {
		return c;
	}
	switch (c) {
	case 0xcc: return rd_be(r, 1);
	case 0xcd: return rd_be(r, 2);
	case 0xce: return rd_be(r, 4);
	case 0xcf: return rd_be(r, 8);
	case 0xd0: s = (int8_t)rd_be(r, 1); break;
	case 0xd1: s = (int16_t)rd_be(r, 2); break;
	case 0xd2: s = (int32_t)rd_be(r, 4); break;
	case 0xd3: s = (int64_t)rd_be(r, 8); break;
	default:
		if (c >= 0xe0) {
			s = (int8_t)c; /* negative fixint */
			break;
		}
		r->err = 1;
		return 0;
	}
	*neg = s < 0;
	return (uint64_t)s;
}

/* rd_int reads an int field. Note that encoders write non-negative ints in
 * the unsigned formats (0xcc..0xcf): both families are accepted. */
static int64_t rd_int(reader *r) {
	int neg;
	uint64_t v = rd_num(r, &neg);
	if (!neg && v > INT64_MAX) {
		r->err = 1;
		return 0;
	}
	return (int64_t)v;
}

/* rd_uint reads a uint field; a negative value is malformed. */
static uint64_t rd_uint(reader *r) {
	int neg;
	uint64_t v = rd_num(r, &neg);
	if (neg) {
		r->err = 1;
		return 0;
	}
	return v;
}

static int rd_bool(reader *r) {
	uint8_t c = rd_byte(r);
	if (c != 0xc2 && c != 0xc3) {
		r->err = 1;
	}
	return c == 0xc3;
}

/* rd_array reads an array header; nil reads as an empty array. */
static uint32_t rd_array(reader *r) {
	uint8_t c = rd_byte(r);
	uint64_t n = 0;
	if (c >= 0x90 && c <= 0x9f) {
		n = c & 0x0f;
	} else if (c == 0xdc) {
		n = rd_be(r, 2);
	} else if (c == 0xdd) {
		n = rd_be(r, 4);
	} else if (c != 0xc0) {
		r->err = 1;
	}
	if (r->err || n > rd_left(r)) {
		r->err = 1;
		return 0;
	}
	return (uint32_t)n;
}

/* rd_map reads a map header; nil reads as an empty map. */
static uint32_t rd_map(reader *r) {
	uint8_t c = rd_byte(r);
	uint64_t n = 0;
	if (c >= 0x80 && c <= 0x8f) {
		n = c & 0x0f;
	} else if (c == 0xde) {
		n = rd_be(r, 2);
	} else if (c == 0xdf) {
		n = rd_be(r, 4);
	} else if (c != 0xc0) {
		r->err = 1;
	}
	if (r->err || n > rd_left(r) / 2) {
		r->err = 1;
		return 0;
	}
	return (uint32_t)n;
}

/* rd_bytes reads a str, a bin or nil (as 0 bytes) and returns a pointer
 * into the input; *n is the length. str and bin are interchangeable here:
 * a str is not guaranteed to be valid UTF-8 (check_name checks that). */
static const uint8_t *rd_bytes(reader *r, uint32_t *n) {
	uint8_t c = rd_byte(r);
	uint64_t len = 0;
	*n = 0;
	if (c >= 0xa0 && c <= 0xbf) {
		len = c & 0x1f;
	} else if (c == 0xd9 || c == 0xc4) {
		len = rd_be(r, 1);
	} else if (c == 0xda || c == 0xc5) {
		len = rd_be(r, 2);
	} else if (c == 0xdb || c == 0xc6) {
		len = rd_be(r, 4);
	} else if (c != 0xc0) {
		r->err = 1;
	}
	if (r->err || !rd_need(r, (uint32_t)len)) {
		return r->p;
	}
	const uint8_t *p = r->p;
	r->p += len;
	*n = (uint32_t)len;
	return p;
}

/* rd_skip skips count values of any type, nested ones included, without
 * recursion: pending counts the values still to skip. */
static void rd_skip(reader *r, uint64_t count) {
	uint64_t pending = count;
	while (pending > 0 && !r->err) {
		pending--;
		uint8_t c = rd_byte(r);
		uint64_t skip = 0;
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
			continue; /* fixint, nil, bool */
		} else if (c <= 0x8f) {
			pending += 2u * (c & 0x0f); /* fixmap */
		} else if (c <= 0x9f) {
			pending += c & 0x0f; /* fixarray */
		} else if (c <= 0xbf) {
			skip = c & 0x1f; /* fixstr */
		} else {
			switch (c) {
			case 0xc4: case 0xd9: skip = rd_be(r, 1); break;        /* bin8, str8 */
			case 0xc5: case 0xda: skip = rd_be(r, 2); break;        /* bin16, str16 */
			case 0xc6: case 0xdb: skip = rd_be(r, 4); break;        /* bin32, str32 */
			case 0xc7: skip = rd_be(r, 1) + 1; break;               /* ext8: length, type */
			case 0xc8: skip = rd_be(r, 2) + 1; break;               /* ext16 */
			case 0xc9: skip = rd_be(r, 4) + 1; break;               /* ext32 */
			case 0xcc: case 0xd0: skip = 1; break;
			case 0xcd: case 0xd1: skip = 2; break;
			case 0xca: case 0xce: case 0xd2: skip = 4; break;       /* float32, 32-bit ints */
			case 0xcb: case 0xcf: case 0xd3: skip = 8; break;       /* float64, 64-bit ints */
			case 0xd4: skip = 2; break;                             /* fixext1..16: type, data */
			case 0xd5: skip = 3; break;
			case 0xd6: skip = 5; break;
			case 0xd7: skip = 9; break;
			case 0xd8: skip = 17; break;
			case 0xdc: pending += rd_be(r, 2); break;
			case 0xdd: pending += rd_be(r, 4); break;
			case 0xde: pending += 2 * rd_be(r, 2); break;
			case 0xdf: pending += 2 * rd_be(r, 4); break;
			default: r->err = 1; /* 0xc1 is never used */
			}
		}
		if (skip > rd_left(r) || pending > rd_left(r)) {
			r->err = 1;
			return;
		}
		r->p += skip;
	}
}

/* rd_fields reads the header of a message array with at least min fields
 * and returns how many fields follow the known ones (to skip at the end:
 * a later minor version may append fields). */
static uint32_t rd_fields(reader *r, uint32_t min) {
	uint32_t n = rd_array(r);
	if (n < min) {
		r->err = 1;
		return 0;
	}
	return n - min;
}

/* rd_done checks that the message ended exactly at the end of the request. */
static int rd_done(reader *r, const char *what) {
	if (!r->err && r->p != r->end) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: malformed %s request: %u trailing bytes after the message", what,
			    rd_left(r));
	}
	if (r->err) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: malformed %s request: not the msgpack message of abi/WASM.md", what);
	}
	return CODE_OK;
}

/* ---- msgpack writer ----
 *
 * A writer appends to a growable buffer. An allocation failure sets oom,
 * after which writes are dropped; the caller checks oom once at the end. */
typedef struct {
	uint8_t *p;
	size_t len, cap;
	int oom;
} writer;

static int wr_grow(writer *w, size_t n) {
	if (w->oom) {
		return 0;
	}
	if (w->cap - w->len >= n) {
		return 1;
	}
	if (n > MAX_BUFFER - w->len) {
		w->oom = 1;
		return 0;
	}
	size_t cap = w->cap < MIN_BUFFER ? MIN_BUFFER : w->cap;
	while (cap - w->len < n) {
		cap = cap > MAX_BUFFER / 2 ? MAX_BUFFER : cap * 2;
	}
	uint8_t *p = realloc(w->p, cap);
	if (p == NULL) {
		w->oom = 1;
		return 0;
	}
	w->p = p;
	w->cap = cap;
	return 1;
}

static void wr_raw(writer *w, const void *b, size_t n) {
	if (n > 0 && wr_grow(w, n)) {
		memcpy(w->p + w->len, b, n);
		w->len += n;
	}
}

static void wr_byte(writer *w, uint8_t c) { wr_raw(w, &c, 1); }

/* wr_be writes c followed by v as an n-byte big-endian number. */
static void wr_be(writer *w, uint8_t c, uint64_t v, int n) {
	uint8_t b[9];
	b[0] = c;
	for (int i = 0; i < n; i++) {
		b[n - i] = (uint8_t)(v >> (8 * i));
	}
	wr_raw(w, b, (size_t)n + 1);
}

static void wr_uint(writer *w, uint64_t v) {
	if (v <= 0x7f) {
		wr_byte(w, (uint8_t)v);
	} else if (v <= 0xff) {
		wr_be(w, 0xcc, v, 1);
	} else if (v <= 0xffff) {
		wr_be(w, 0xcd, v, 2);
	} else if (v <= 0xffffffffu) {
		wr_be(w, 0xce, v, 4);
	} else {
		wr_be(w, 0xcf, v, 8);
	}
}

static void wr_int(writer *w, int64_t v) {
	if (v >= 0) {
		wr_uint(w, (uint64_t)v);
	} else if (v >= -32) {
		wr_byte(w, (uint8_t)v); /* negative fixint */
	} else if (v >= INT8_MIN) {
		wr_be(w, 0xd0, (uint64_t)v, 1);
	} else if (v >= INT16_MIN) {
		wr_be(w, 0xd1, (uint64_t)v, 2);
	} else if (v >= INT32_MIN) {
		wr_be(w, 0xd2, (uint64_t)v, 4);
	} else {
		wr_be(w, 0xd3, (uint64_t)v, 8);
	}
}

static void wr_bool(writer *w, int v) { wr_byte(w, v ? 0xc3 : 0xc2); }

static void wr_array(writer *w, uint32_t n) {
	if (n <= 15) {
		wr_byte(w, (uint8_t)(0x90 | n));
	} else if (n <= 0xffff) {
		wr_be(w, 0xdc, n, 2);
	} else {
		wr_be(w, 0xdd, n, 4);
	}
}

/* wr_array_later reserves an array32 header for a count known only at the
 * end and returns its offset for wr_array_set. A 5-byte header for a short
 * array is valid msgpack: decoders accept any width. */
static size_t wr_array_later(writer *w) {
	size_t at = w->len;
	wr_be(w, 0xdd, 0, 4);
	return at;
}

static void wr_array_set(writer *w, size_t at, uint32_t n) {
	if (!w->oom) {
		for (int i = 0; i < 4; i++) {
			w->p[at + 4 - i] = (uint8_t)(n >> (8 * i));
		}
	}
}

/* wr_head writes the header of a str (str != 0) or of a bin of n bytes. */
static void wr_head(writer *w, int str, uint32_t n) {
	if (str && n <= 31) {
		wr_byte(w, (uint8_t)(0xa0 | n));
	} else if (n <= 0xff) {
		wr_be(w, str ? 0xd9 : 0xc4, n, 1);
	} else if (n <= 0xffff) {
		wr_be(w, str ? 0xda : 0xc5, n, 2);
	} else {
		wr_be(w, str ? 0xdb : 0xc6, n, 4);
	}
}

static void wr_str(writer *w, const uint8_t *s, uint32_t n) {
	wr_head(w, 1, n);
	wr_raw(w, s, n);
}

static void wr_bin(writer *w, const uint8_t *s, uint32_t n) {
	wr_head(w, 0, n);
	wr_raw(w, s, n);
}

/* ---- The store ---- */

/* A record is one allocation: the header, then the map name, the key and
 * the value. */
typedef struct record {
	int64_t exp, created, updated;
	uint32_t map_len, key_len, val_len;
	uint32_t mark; /* the get call that last returned it, to skip duplicate keys */
	uint8_t backup;
	uint8_t data[];
} record;

#define REC_MAP(r) ((r)->data)
#define REC_KEY(r) ((r)->data + (r)->map_len)
#define REC_VAL(r) ((r)->data + (r)->map_len + (r)->key_len)

/* An id names a record: (map, backup, key). */
typedef struct {
	const uint8_t *map, *key;
	uint32_t map_len, key_len;
	int backup;
} id;

static record **recs; /* every record, sorted by (map, backup, key) */
static uint32_t nrecs;
static uint32_t get_mark; /* the current get call, for record.mark */

static int opened, closed;
static uint32_t max_response = 32u << 20; /* from open */

/* cmp_id orders ids: map, then backup (primary first), then key, all in
 * byte order. */
static int cmp_id(const id *a, const id *b) {
	int c = cmpb(a->map, a->map_len, b->map, b->map_len);
	if (c == 0 && a->backup != b->backup) {
		c = a->backup ? 1 : -1;
	}
	return c != 0 ? c : cmpb(a->key, a->key_len, b->key, b->key_len);
}

static id id_of(const record *r) {
	id k = {REC_MAP(r), REC_KEY(r), r->map_len, r->key_len, r->backup};
	return k;
}

static int cmp_rec(const record *r, const id *k) {
	id rk = id_of(r);
	return cmp_id(&rk, k);
}

/* lower_bound returns the index of the first record of recs[from..nrecs)
 * not before k. */
static uint32_t lower_bound(uint32_t from, const id *k) {
	uint32_t lo = from, hi = nrecs;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (cmp_rec(recs[mid], k) < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

/* same_side reports whether r is in the map and side (primary or backup) of k. */
static int same_side(const record *r, const id *k) {
	return r->backup == k->backup && cmpb(REC_MAP(r), r->map_len, k->map, k->map_len) == 0;
}

/* sort sorts the pointers p[0..n) by cmp, with tmp[0..n) as scratch, and
 * returns the array that holds the result (p or tmp). It is a bottom-up
 * merge sort: stable, not recursive, and much faster than wasi-libc's
 * qsort under a host that instruments loops and calls (a sandboxed host).
 * Runs already in order are copied without comparisons. */
static void **sort(void **p, void **tmp, uint32_t n, int (*cmp)(const void *, const void *)) {
	for (uint32_t width = 1; width < n; width = width > n / 2 ? n : width * 2) {
		for (uint32_t lo = 0; lo < n; lo += 2 * width) {
			uint32_t mid = n - lo > width ? lo + width : n;
			uint32_t hi = n - mid > width ? mid + width : n;
			uint32_t a = lo, b = mid, o = lo;
			if (mid < hi && cmp(p[mid - 1], p[mid]) > 0) {
				while (a < mid && b < hi) {
					tmp[o++] = cmp(p[b], p[a]) < 0 ? p[b++] : p[a++];
				}
			}
			memcpy(&tmp[o], &p[a], (mid - a) * sizeof *p); /* the rest of the runs */
			o += mid - a;
			memcpy(&tmp[o], &p[b], (hi - b) * sizeof *p);
		}
		void **t = p;
		p = tmp;
		tmp = t;
	}
	return p;
}

static void free_store(void) {
	for (uint32_t i = 0; i < nrecs; i++) {
		free(recs[i]);
	}
	free(recs);
	recs = NULL;
	nrecs = 0;
}

/* ---- Operations ----
 *
 * Each handler reads its request from r and writes its response to w, and
 * returns a code; on error the message is in errmsg and w is discarded.
 * Handlers decode the whole request before they change anything. */

static void wr_description(writer *w) {
	wr_array(w, 4);
	wr_str(w, (const uint8_t *)"memkv", 5);
	wr_uint(w, ABI_MAJOR);
	wr_uint(w, ABI_MINOR);
	wr_uint(w, CAP_ATOMIC_BATCH);
}

/* empty_request checks the request of an op that takes none: 0 bytes. */
static int empty_request(reader *r, const char *what) {
	if (r->p != r->end) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: malformed %s request: want 0 bytes, got %u", what, rd_left(r));
	}
	return CODE_OK;
}

/* describe: empty -> Description. Valid before open and after close. */
static int op_describe(reader *r, writer *w) {
	int code = empty_request(r, "describe");
	if (code == CODE_OK) {
		wr_description(w);
	}
	return code;
}

/* open: [config map<str,str>, data_dir str, max_response_bytes uint,
 * memory_limit_bytes uint] -> Description. memkv takes no configuration
 * and does not use the data directory. */
static int op_open(reader *r, writer *w) {
	if (opened || closed) {
		return fail(CODE_CONFLICT, "memkv: open was already called on this instance");
	}
	uint32_t extra = rd_fields(r, 4);
	uint32_t n = rd_map(r);
	const uint8_t *unknown = NULL;
	uint32_t unknown_len = 0;
	for (uint32_t i = 0; i < n && !r->err; i++) {
		uint32_t kl, vl;
		const uint8_t *k = rd_bytes(r, &kl);
		rd_bytes(r, &vl);
		if (unknown == NULL) {
			unknown = k;
			unknown_len = kl;
		}
	}
	uint32_t dl;
	rd_bytes(r, &dl);                /* data_dir: "/data" or "" */
	uint64_t max_resp = rd_uint(r);  /* max_response_bytes */
	rd_uint(r);                      /* memory_limit_bytes: the host enforces it */
	rd_skip(r, extra);
	int code = rd_done(r, "open");
	if (code != CODE_OK) {
		return code;
	}
	if (unknown != NULL) {
		return fail(CODE_INVALID_ARGUMENT,
			    "memkv: unknown configuration key %s; memkv takes no configuration (leave TOPGUN_PLUGIN_CONFIG unset)",
			    quote(unknown, unknown_len));
	}
	if (max_resp > 0) {
		max_response = max_resp > MAX_BUFFER ? MAX_BUFFER : (uint32_t)max_resp;
	}
	opened = 1;
	log_line(2, "memkv: opened; records live in memory and are lost when the instance ends");
	wr_description(w);
	return CODE_OK;
}

/* close: empty -> empty. Frees everything; idempotent. */
static int op_close(reader *r, writer *w) {
	(void)w;
	int code = empty_request(r, "close");
	if (code == CODE_OK && !closed) {
		free_store();
		closed = 1;
	}
	return code;
}

/* A mutation of an apply request; its bytes point into the request. */
typedef struct {
	id id;
	const uint8_t *val;
	uint32_t val_len;
	int64_t exp;
	uint64_t kind;  /* 1 put, 2 delete */
	uint32_t index; /* position in the batch */
	record *made;   /* the new record, on the last mutation of a record when it is a put */
} mutation;

static int cmp_mutation(const void *a, const void *b) {
	return cmp_id(&((const mutation *)a)->id, &((const mutation *)b)->id);
}

/* copy_records copies the pointers recs[from..to) to dst and returns how many. */
static uint32_t copy_records(record **dst, uint32_t from, uint32_t to) {
	if (to > from) {
		memcpy(dst, recs + from, (to - from) * sizeof *dst);
	}
	return to - from;
}

static record *new_record(const mutation *m, int64_t now) {
	record *r = malloc(sizeof(record) + (size_t)m->id.map_len + m->id.key_len + m->val_len);
	if (r == NULL) {
		return NULL;
	}
	r->exp = m->exp;
	r->created = r->updated = now;
	r->map_len = m->id.map_len;
	r->key_len = m->id.key_len;
	r->val_len = m->val_len;
	r->mark = 0;
	r->backup = (uint8_t)m->id.backup;
	memcpy(REC_MAP(r), m->id.map, m->id.map_len);
	memcpy(REC_KEY(r), m->id.key, m->id.key_len);
	if (m->val_len > 0) {
		memcpy(REC_VAL(r), m->val, m->val_len);
	}
	return r;
}

/* validate_mutation checks one mutation as abi.ValidateBatch does. */
static int validate_mutation(const mutation *m) {
	int code = check_name(m->index, "map name", m->id.map, m->id.map_len, MAX_MAP_NAME_BYTES);
	if (code == CODE_OK) {
		code = check_name(m->index, "key", m->id.key, m->id.key_len, MAX_KEY_BYTES);
	}
	if (code != CODE_OK) {
		return code;
	}
	if (m->kind != 1 && m->kind != 2) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: %sunknown kind %llu; use 1 (put) or 2 (delete)", where(m->index),
			    (unsigned long long)m->kind);
	}
	if (m->kind == 1 && m->val_len > MAX_VALUE_BYTES) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: %svalue of key %s is %u bytes, the limit is %u", where(m->index),
			    quote(m->id.key, m->id.key_len), (unsigned)m->val_len, MAX_VALUE_BYTES);
	}
	if (m->kind == 1 && m->exp < 0) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: %sexpiration time %lld of key %s is negative", where(m->index),
			    (long long)m->exp, quote(m->id.key, m->id.key_len));
	}
	return CODE_OK;
}

/* apply: [now int, mutations array<[kind uint, map str, key str,
 * backup bool, value bin, expiration int]>] -> empty. All or nothing:
 *
 * 1. decode and validate every mutation (an error changes nothing);
 * 2. sort them by record, keeping batch order within a record, so that
 *    the last mutation of each record decides what becomes of it;
 * 3. allocate the new records and the new array (on failure, free them:
 *    nothing changed);
 * 4. merge the old array and the batch into the new array, which cannot
 *    fail, then free what was replaced. */
static int op_apply(reader *r, writer *w) {
	(void)w;
	uint32_t extra = rd_fields(r, 2);
	int64_t now = rd_int(r);
	uint32_t n = rd_array(r);
	if (!r->err && n > MAX_BATCH_OPS) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: batch has %u mutations, the limit is %u", (unsigned)n, MAX_BATCH_OPS);
	}
	/* One allocation: the mutations, then two arrays of pointers to sort them. */
	mutation *ms = NULL;
	if (!r->err && n > 0 && (ms = calloc(n, sizeof *ms + 2 * sizeof(mutation *))) == NULL) {
		return fail(CODE_RESOURCE_EXHAUSTED, "memkv: no memory to decode a batch of %u mutations", (unsigned)n);
	}
	for (uint32_t i = 0; i < n && !r->err; i++) {
		mutation *m = &ms[i];
		uint32_t more = rd_fields(r, 6);
		m->index = i;
		m->kind = rd_uint(r);
		m->id.map = rd_bytes(r, &m->id.map_len);
		m->id.key = rd_bytes(r, &m->id.key_len);
		m->id.backup = rd_bool(r);
		m->val = rd_bytes(r, &m->val_len);
		m->exp = rd_int(r);
		rd_skip(r, more);
	}
	rd_skip(r, extra);
	int code = rd_done(r, "apply");
	if (code == CODE_OK && now <= 0) {
		code = fail(CODE_INVALID_ARGUMENT, "memkv: batch time %lld is not positive", (long long)now);
	}
	for (uint32_t i = 0; i < n && code == CODE_OK; i++) {
		code = validate_mutation(&ms[i]);
	}
	if (code != CODE_OK || n == 0) {
		free(ms);
		return code;
	}

	mutation **order = (mutation **)(ms + n);
	for (uint32_t i = 0; i < n; i++) {
		order[i] = &ms[i];
	}
	order = (mutation **)sort((void **)order, (void **)(order + n), n, cmp_mutation);
	uint32_t puts = 0;
	for (uint32_t i = 0; i < n && code == CODE_OK; i++) {
		mutation *m = order[i];
		int last = i + 1 == n || cmp_id(&m->id, &order[i + 1]->id) != 0;
		if (last && m->kind == 1) {
			if ((m->made = new_record(m, now)) == NULL) {
				code = CODE_RESOURCE_EXHAUSTED;
			}
			puts++;
		}
	}
	record **out = NULL;
	if (code == CODE_OK && (out = malloc(((size_t)nrecs + puts + 1) * sizeof *out)) == NULL) {
		code = CODE_RESOURCE_EXHAUSTED;
	}
	if (code != CODE_OK) {
		for (uint32_t i = 0; i < n; i++) {
			free(ms[i].made);
		}
		free(ms);
		return fail(code, "memkv: no memory for a batch of %u mutations (raise TOPGUN_PLUGIN_MEMORY_MB or send smaller batches)",
			    (unsigned)n);
	}

	uint32_t o = 0, i = 0;
	for (uint32_t g = 0; g < n;) {
		/* order[g..e) are the mutations of one record, in batch order. */
		uint32_t e = g + 1;
		int deleted = order[g]->kind == 2;
		while (e < n && cmp_id(&order[e]->id, &order[g]->id) == 0) {
			deleted |= order[e]->kind == 2;
			e++;
		}
		const mutation *last = order[e - 1];
		uint32_t j = lower_bound(i, &last->id); /* recs[i..j) come before the record: keep them */
		o += copy_records(out + o, i, j);
		i = j;
		record *old = i < nrecs && cmp_rec(recs[i], &last->id) == 0 ? recs[i++] : NULL;
		if (last->made != NULL) {
			/* A put of an existing record keeps its CreatedAt, unless the
			 * batch deleted the record first: then the put re-creates it. */
			if (old != NULL && !deleted) {
				last->made->created = old->created;
			}
			out[o++] = last->made;
		}
		free(old);
		g = e;
	}
	o += copy_records(out + o, i, nrecs);
	free(recs);
	recs = out;
	nrecs = o;
	free(ms);
	return CODE_OK;
}

/* wr_record writes [key str, value bin, expiration int, created_at int,
 * updated_at int]. */
static void wr_record(writer *w, const record *rc) {
	wr_array(w, 5);
	wr_str(w, REC_KEY(rc), rc->key_len);
	wr_bin(w, REC_VAL(rc), rc->val_len);
	wr_int(w, rc->exp);
	wr_int(w, rc->created);
	wr_int(w, rc->updated);
}

static int fail_too_large(const char *what) {
	return fail(CODE_RESOURCE_EXHAUSTED,
		    "memkv: the %s response exceeds the %u-byte limit (TOPGUN_PLUGIN_MAX_RESPONSE_BYTES); ask for fewer records",
		    what, (unsigned)max_response);
}

/* get: [map str, backup bool, keys array<str>] -> Records, in the order of
 * keys, absent keys skipped, a repeated key once. Records are written as
 * the keys are read: on an error the response is discarded anyway. */
static int op_get(reader *r, writer *w) {
	uint32_t extra = rd_fields(r, 3);
	id k = {0};
	k.map = rd_bytes(r, &k.map_len);
	k.backup = rd_bool(r);
	uint32_t n = rd_array(r);
	if (r->err) {
		return rd_done(r, "get");
	}
	if (n > MAX_GET_KEYS) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: get of %u keys, the limit is %u", (unsigned)n, MAX_GET_KEYS);
	}
	int code = check_name(-1, "map name", k.map, k.map_len, MAX_MAP_NAME_BYTES);
	if (code != CODE_OK) {
		return code;
	}
	if (++get_mark == 0) { /* wrapped around: forget every mark */
		for (uint32_t i = 0; i < nrecs; i++) {
			recs[i]->mark = 0;
		}
		get_mark = 1;
	}
	size_t at = wr_array_later(w);
	uint32_t found = 0;
	for (uint32_t i = 0; i < n && !r->err; i++) {
		k.key = rd_bytes(r, &k.key_len);
		if (!r->err && (code = check_name(-1, "key", k.key, k.key_len, MAX_KEY_BYTES)) != CODE_OK) {
			return code;
		}
		uint32_t j = lower_bound(0, &k);
		if (j < nrecs && cmp_rec(recs[j], &k) == 0 && recs[j]->mark != get_mark) {
			recs[j]->mark = get_mark;
			wr_record(w, recs[j]);
			found++;
			if (w->len > max_response) {
				return fail_too_large("get");
			}
		}
	}
	rd_skip(r, extra);
	if ((code = rd_done(r, "get")) != CODE_OK) {
		return code;
	}
	wr_array_set(w, at, found);
	return CODE_OK;
}

/* scan: [map str, backup bool, cursor bin|nil, limit int, max_bytes int]
 * -> [records, cursor bin|nil]. The cursor is 'k' followed by the last key
 * returned; the next page starts after that key. A page holds at most
 * limit records and max_bytes bytes of keys and values, except that a
 * first record larger than max_bytes comes alone. The cursor is nil on
 * the page that holds the map's last record. */
static int op_scan(reader *r, writer *w) {
	uint32_t extra = rd_fields(r, 5);
	id k = {0};
	k.map = rd_bytes(r, &k.map_len);
	k.backup = rd_bool(r);
	uint32_t cl;
	const uint8_t *cursor = rd_bytes(r, &cl);
	int64_t limit = rd_int(r), max_bytes = rd_int(r);
	rd_skip(r, extra);
	int code = rd_done(r, "scan");
	if (code != CODE_OK || (code = check_name(-1, "map name", k.map, k.map_len, MAX_MAP_NAME_BYTES)) != CODE_OK) {
		return code;
	}
	if (cl > 0 && (cursor[0] != 'k' || cl - 1 > MAX_KEY_BYTES)) {
		return fail(CODE_INVALID_ARGUMENT, "memkv: scan cursor %s is not one memkv issued; pass back the cursor of the previous page",
			    quote(cursor, cl));
	}
	if (limit <= 0) {
		limit = DEFAULT_SCAN_LIMIT;
	}
	if (max_bytes <= 0) {
		max_bytes = DEFAULT_SCAN_BYTES;
	}
	uint32_t i;
	if (cl == 0) {
		k.key_len = 0; /* "" is the smallest key */
		k.key = cursor;
		i = lower_bound(0, &k);
	} else {
		k.key = cursor + 1;
		k.key_len = cl - 1;
		i = lower_bound(0, &k);
		if (i < nrecs && cmp_rec(recs[i], &k) == 0) {
			i++; /* resume after the cursor's key */
		}
	}
	wr_array(w, 2);
	size_t at = wr_array_later(w);
	uint32_t count = 0;
	int64_t used = 0;
	const record *more = NULL; /* set when records remain after the page */
	for (; i < nrecs && same_side(recs[i], &k); i++) {
		const record *rc = recs[i];
		int64_t size = (int64_t)rc->key_len + rc->val_len;
		if (count >= limit || (count > 0 && used + size > max_bytes)) {
			more = recs[i - 1];
			break;
		}
		wr_record(w, rc);
		used += size;
		count++;
	}
	wr_array_set(w, at, count);
	if (more != NULL) {
		wr_head(w, 0, more->key_len + 1);
		wr_byte(w, 'k');
		wr_raw(w, REC_KEY(more), more->key_len);
	} else {
		wr_byte(w, 0xc0); /* nil: the scan is complete */
	}
	return w->len > max_response ? fail_too_large("scan") : CODE_OK;
}

/* list_maps: empty -> the sorted names of the maps with primary records,
 * at most MAX_MAPS of them (more is code 6). Records are sorted by map
 * first, so each map's primary records are adjacent. */
static int op_list_maps(reader *r, writer *w) {
	int code = empty_request(r, "list_maps");
	if (code != CODE_OK) {
		return code;
	}
	size_t at = wr_array_later(w);
	uint32_t count = 0;
	const record *prev = NULL;
	for (uint32_t i = 0; i < nrecs; i++) {
		const record *rc = recs[i];
		if (rc->backup || (prev != NULL && cmpb(REC_MAP(prev), prev->map_len, REC_MAP(rc), rc->map_len) == 0)) {
			continue;
		}
		if (count == MAX_MAPS) {
			/* The host treats a longer list as malformed and discards the
			 * instance, and with it every record. */
			return fail(CODE_RESOURCE_EXHAUSTED, "memkv: more than %u maps hold records; list_maps answers at most %u names",
				    MAX_MAPS, MAX_MAPS);
		}
		wr_str(w, REC_MAP(rc), rc->map_len);
		prev = rc;
		count++;
	}
	wr_array_set(w, at, count);
	return w->len > max_response ? fail_too_large("list_maps") : CODE_OK;
}

/* cmp_expired orders by expiration time, then map, backup and key. */
static int cmp_expired(const void *a, const void *b) {
	const record *x = a, *y = b;
	if (x->exp != y->exp) {
		return x->exp < y->exp ? -1 : 1;
	}
	id xk = id_of(x), yk = id_of(y);
	return cmp_id(&xk, &yk);
}

/* list_expired: [now int, limit int] -> array<[map str, key str,
 * backup bool, expiration int, created_at int, updated_at int]>: records
 * with 0 < expiration <= now, earliest first, at most limit of them
 * (limit <= 0: 1000, as for scan). Without an expiry index this sorts the
 * matching records on every call. */
static int op_list_expired(reader *r, writer *w) {
	uint32_t extra = rd_fields(r, 2);
	int64_t now = rd_int(r), limit = rd_int(r);
	rd_skip(r, extra);
	int code = rd_done(r, "list_expired");
	if (code != CODE_OK) {
		return code;
	}
	if (limit <= 0) {
		limit = DEFAULT_SCAN_LIMIT;
	}
	void **exp = malloc((2 * (size_t)nrecs + 1) * sizeof *exp); /* the records, then scratch */
	if (exp == NULL) {
		return fail(CODE_RESOURCE_EXHAUSTED, "memkv: no memory to list the expired records of %u records", (unsigned)nrecs);
	}
	uint32_t n = 0;
	for (uint32_t i = 0; i < nrecs; i++) {
		if (recs[i]->exp > 0 && recs[i]->exp <= now) {
			exp[n++] = recs[i];
		}
	}
	void **sorted = sort(exp, exp + n, n, cmp_expired);
	if (n > limit) {
		n = (uint32_t)limit;
	}
	wr_array(w, n);
	for (uint32_t i = 0; i < n; i++) {
		const record *rc = sorted[i];
		wr_array(w, 6);
		wr_str(w, REC_MAP(rc), rc->map_len);
		wr_str(w, REC_KEY(rc), rc->key_len);
		wr_bool(w, rc->backup);
		wr_int(w, rc->exp);
		wr_int(w, rc->created);
		wr_int(w, rc->updated);
	}
	free(exp);
	return w->len > max_response ? fail_too_large("list_expired") : CODE_OK;
}

/* ---- Exports ---- */

/* The scratch buffer (buf, buf_cap) receives requests and holds responses;
 * out is where responses are built. */
static uint8_t *buf;
static uint32_t buf_cap;
static writer out;

__attribute__((export_name("topgun_abi_version"))) uint32_t topgun_abi_version(void) {
	return (uint32_t)ABI_MAJOR << 16 | ABI_MINOR;
}

/* topgun_buffer returns the scratch buffer, grown to at least min_cap
 * bytes, or 0 when it cannot grow. Without growth the contents stay (the
 * host calls it after a buffer-moved response to find the response); after
 * growth they are undefined (the host calls it before writing a request). */
__attribute__((export_name("topgun_buffer"))) uint32_t topgun_buffer(uint32_t min_cap) {
	if (buf != NULL && min_cap <= buf_cap) {
		return (uint32_t)(uintptr_t)buf;
	}
	if (min_cap > MAX_BUFFER) {
		return 0;
	}
	if (out.p != NULL && out.cap >= min_cap) {
		/* The response buffer is big enough: swap the two. */
		uint8_t *p = buf;
		size_t c = buf_cap;
		buf = out.p;
		buf_cap = (uint32_t)out.cap;
		out.p = p;
		out.cap = p != NULL ? c : 0;
		return (uint32_t)(uintptr_t)buf;
	}
	uint32_t cap = min_cap < MIN_BUFFER ? MIN_BUFFER : min_cap;
	uint8_t *p = malloc(cap);
	if (p == NULL) {
		return 0;
	}
	free(buf);
	buf = p;
	buf_cap = cap;
	return (uint32_t)(uintptr_t)buf;
}

static uint64_t result(uint32_t status, uint32_t len) { return (uint64_t)status << 32 | len; }

/* topgun_call runs one op on the request of req_len bytes in the scratch
 * buffer and returns (status << 32) | response length. */
__attribute__((export_name("topgun_call"))) uint64_t topgun_call(uint32_t op, uint32_t req_len) {
	if (topgun_buffer(MIN_BUFFER) == 0) {
		return result(CODE_RESOURCE_EXHAUSTED, 0); /* no buffer for a message */
	}
	reader r = {buf, buf, 0};
	int code;
	out.len = 0;
	out.oom = 0;
	if (req_len > buf_cap) {
		code = fail(CODE_INVALID_ARGUMENT, "memkv: request of %u bytes is larger than the %u-byte buffer; call topgun_buffer first",
			    (unsigned)req_len, (unsigned)buf_cap);
	} else {
		r.end = buf + req_len;
		int data_op = op >= OP_APPLY && op <= OP_LIST_EXPIRED;
		if (data_op && closed) {
			code = fail(CODE_UNAVAILABLE, "memkv: the store is closed");
		} else if (data_op && !opened) {
			code = fail(CODE_UNAVAILABLE, "memkv: the store is not open; call open first");
		} else {
			switch (op) {
			case OP_DESCRIBE: code = op_describe(&r, &out); break;
			case OP_OPEN: code = op_open(&r, &out); break;
			case OP_APPLY: code = op_apply(&r, &out); break;
			case OP_GET: code = op_get(&r, &out); break;
			case OP_SCAN: code = op_scan(&r, &out); break;
			case OP_LIST_MAPS: code = op_list_maps(&r, &out); break;
			case OP_LIST_EXPIRED: code = op_list_expired(&r, &out); break;
			case OP_CLOSE: code = op_close(&r, &out); break;
			default: code = fail(CODE_UNSUPPORTED, "memkv: unknown op %u; memkv implements ABI 1.0 (ops 1 to 8)", (unsigned)op);
			}
		}
		if (code == CODE_OK && out.oom) {
			code = fail(CODE_RESOURCE_EXHAUSTED, "memkv: no memory for the response (raise TOPGUN_PLUGIN_MEMORY_MB or ask for less)");
		}
	}
	if (code != CODE_OK) {
		uint32_t n = (uint32_t)strlen(errmsg); /* < MAX_ERROR_BYTES <= MIN_BUFFER */
		memcpy(buf, errmsg, n);
		return result((uint32_t)code, n);
	}
	if (out.len <= buf_cap) {
		if (out.len > 0) {
			memcpy(buf, out.p, out.len);
		}
		return result(CODE_OK, (uint32_t)out.len);
	}
	/* The response does not fit: it becomes the scratch buffer. */
	uint32_t n = (uint32_t)out.len;
	uint8_t *p = buf;
	uint32_t c = buf_cap;
	buf = out.p;
	buf_cap = (uint32_t)out.cap;
	out.p = p;
	out.cap = c;
	return result(STATUS_BUFFER_MOVED, n);
}
