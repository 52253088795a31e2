package redb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// The tree walk below checks, before bbolt opens a file, the structure of
// every page bbolt can reach from the root bucket. bbolt trusts the pages
// it reads: it turns the offsets, lengths and page ids they hold into
// pointers without bounds checks, so a damaged page can make it read, and
// keep pointers to, memory outside its memory map. Reading unmapped memory
// is a fault the Backend recovers from (debug.SetPanicOnFault), but a
// pointer that lands in the Go heap is found by the garbage collector,
// which stops the process ("found bad pointer in Go heap"); nothing can
// recover from that. So a file is opened only when every reachable page
// checks out: its header names it, its elements and the keys and values
// they point to lie inside it, the pages it points to exist and are
// reached once, and no free page is also in use. Pages bbolt writes later
// are its own and sound; damage done to the file while it is open is not
// caught here.

// errDamaged marks a file whose page structure is broken.
var errDamaged = errors.New("damaged page structure")

const (
	boltElementSize   = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	boltBucketHeader  = 16 // root pgid u64, sequence u64
	boltBucketLeaf    = 0x01
	maxTreeDepth      = 64 // B+tree levels plus nested buckets; real files use under 10
	boltMaxInlineSize = 1 << 24
)

// walkItem is a page to check: a page id, or an inline bucket's page.
type walkItem struct {
	id     uint64
	inline []byte // an inline bucket's page, copied; nil for a page id
	depth  int
	// key is the key a branch page holds for page id, copied; nil when
	// the page is the root of a bucket. bbolt keeps it equal to the
	// page's first key and finds the page by it when it merges or drops
	// the page: a key that differs leaves the branch pointing to a page
	// bbolt has freed, which the next write then reuses.
	key []byte
	// hi is what the parent branch page holds for the next page, which
	// every key of page id must sort below (bbolt also finds pages by
	// binary search); nil when there is no such page.
	hi []byte
}

type treeWalker struct {
	r     io.ReaderAt
	ps    uint64
	pages uint64   // the meta page's high water mark: ids below it are in the file
	seen  []uint64 // bitset of the pages reached
	buf   []byte
	stack []walkItem
}

func damaged(format string, args ...any) error {
	return fmt.Errorf("%s (%w: %w)", fmt.Sprintf(format, args...), errDamaged, bolt.ErrInvalid)
}

// walkTree checks every page reachable from m's root bucket, then m's
// freelist against them.
func walkTree(r io.ReaderAt, m boltMeta) error {
	w := &treeWalker{r: r, ps: m.pageSize, pages: m.pgid, seen: make([]uint64, (m.pgid+63)/64)}
	// Meta pages 0 and 1 are never part of the tree.
	w.seen[0] |= 3
	w.stack = append(w.stack, walkItem{id: m.root})
	for len(w.stack) > 0 {
		it := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		if it.depth > maxTreeDepth {
			return damaged("the tree is nested more than %d levels deep", maxTreeDepth)
		}
		var err error
		if it.inline != nil {
			err = w.checkInline(it.inline, it.depth)
		} else {
			err = w.checkPage(it.id, it.key, it.hi, it.depth)
		}
		if err != nil {
			return err
		}
	}
	if m.freelist != boltNoFreelist {
		return w.checkFreelist(m.freelist)
	}
	return nil
}

// clip shortens a key for an error message.
func clip(k []byte) []byte {
	if len(k) > 32 {
		return k[:32]
	}
	return k
}

func (w *treeWalker) reached(id uint64) bool { return w.seen[id/64]&(1<<(id%64)) != 0 }

// checkPage reads page id (with its overflow pages) and checks it; key is
// what its parent branch page holds for it, nil for the root of a bucket.
func (w *treeWalker) checkPage(id uint64, key, hi []byte, depth int) error {
	if id < 2 || id >= w.pages {
		return damaged("a page points to page %d, outside the %d pages of the file", id, w.pages)
	}
	h, err := readPageHeader(w.r, id, w.ps)
	if err != nil {
		return err
	}
	if h.id != id {
		return damaged("page %d names itself %d", id, h.id)
	}
	if h.flags != boltBranchPage && h.flags != boltLeafPage {
		return damaged("page %d is in the tree but is not a branch or leaf page (flags %#x)", id, h.flags)
	}
	last := id + uint64(h.overflow)
	if last >= w.pages || last < id {
		return damaged("page %d claims %d overflow pages, past the end of the file", id, h.overflow)
	}
	for p := id; p <= last; p++ {
		if w.reached(p) {
			return damaged("page %d is reached twice", p)
		}
		w.seen[p/64] |= 1 << (p % 64)
	}
	p, err := w.read(id, h)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("page %d", id)
	if err := w.checkElements(p, name, h, hi, depth); err != nil {
		return err
	}
	if key != nil {
		if h.count == 0 {
			return damaged("%s is empty but a branch page points to it", name)
		}
		// checkElements checked that element 0's key lies in the page.
		ne := binary.NativeEndian
		e := p[boltPageHeader:]
		var pos, ksize uint64
		if h.flags == boltBranchPage {
			pos, ksize = uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:]))
		} else {
			pos, ksize = uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:]))
		}
		if first := e[pos : pos+ksize]; !bytes.Equal(first, key) {
			return damaged("%s begins with key %q, but its parent branch page holds %q for it", name, clip(first), clip(key))
		}
	}
	return nil
}

// read reads page id, whose header is h, with its overflow pages into the
// walker's buffer.
func (w *treeWalker) read(id uint64, h boltPage) ([]byte, error) {
	n := (uint64(h.overflow) + 1) * w.ps
	if uint64(cap(w.buf)) < n {
		w.buf = make([]byte, n)
	}
	p := w.buf[:n]
	if _, err := w.r.ReadAt(p, int64(id*w.ps)); err != nil {
		return nil, fmt.Errorf("reading page %d: %w", id, err)
	}
	return p, nil
}

// checkInline checks the page of an inline bucket: a leaf page stored in
// its parent's value.
func (w *treeWalker) checkInline(p []byte, depth int) error {
	if len(p) < boltPageHeader {
		return damaged("an inline bucket of %d bytes has no page header", len(p))
	}
	h := parsePageHeader(p)
	if h.flags != boltLeafPage {
		return damaged("an inline bucket's page is not a leaf page (flags %#x)", h.flags)
	}
	return w.checkElements(p, "an inline bucket's page", h, nil, depth)
}

// checkElements checks the elements of page p (header h) and queues the
// pages they point to.
func (w *treeWalker) checkElements(p []byte, name string, h boltPage, hi []byte, depth int) error {
	count := uint64(h.count)
	if h.flags == boltBranchPage && count == 0 {
		return damaged("%s is a branch page without elements", name)
	}
	if boltPageHeader+count*boltElementSize > uint64(len(p)) {
		return damaged("%s claims %d elements, more than its %d bytes hold", name, count, len(p))
	}
	ne := binary.NativeEndian
	// bbolt finds keys by binary search: a key out of order (one damaged
	// byte) hides other, intact records from Get and from the lookup of a
	// put, which then stores a second copy.
	var prev []byte
	inOrder := func(i uint64, key []byte) error {
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			return damaged("%s: element %d's key %q does not sort after the key before it, %q", name, i, clip(key), clip(prev))
		}
		prev = key
		return nil
	}
	lastChild := -1 // index in w.stack of the child pushed last
	for i := uint64(0); i < count; i++ {
		off := boltPageHeader + i*boltElementSize
		e := p[off : off+boltElementSize]
		if h.flags == boltBranchPage {
			pos, ksize, child := uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:])), ne.Uint64(e[8:])
			if off+pos+ksize > uint64(len(p)) {
				return damaged("%s: element %d's key lies past the end of the page", name, i)
			}
			key := p[off+pos : off+pos+ksize]
			if err := inOrder(i, key); err != nil {
				return err
			}
			k := append([]byte{}, key...)
			if lastChild >= 0 {
				w.stack[lastChild].hi = k
			}
			w.stack = append(w.stack, walkItem{id: child, depth: depth + 1, key: k, hi: hi})
			lastChild = len(w.stack) - 1
			continue
		}
		flags, pos, ksize, vsize := ne.Uint32(e[0:]), uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		start := off + pos
		end := start + ksize + vsize
		if end > uint64(len(p)) {
			return damaged("%s: element %d's key and value lie past the end of the page", name, i)
		}
		if err := inOrder(i, p[start:start+ksize]); err != nil {
			return err
		}
		if flags&boltBucketLeaf == 0 {
			continue
		}
		v := p[start+ksize : end]
		if len(v) < boltBucketHeader {
			return damaged("%s: element %d is a bucket of %d bytes, too short for its header", name, i, len(v))
		}
		if root := ne.Uint64(v); root != 0 {
			w.stack = append(w.stack, walkItem{id: root, depth: depth + 1})
			continue
		}
		if len(v)-boltBucketHeader > boltMaxInlineSize {
			return damaged("%s: element %d is an inline bucket of %d bytes", name, i, len(v))
		}
		w.stack = append(w.stack, walkItem{inline: append([]byte(nil), v[boltBucketHeader:]...), depth: depth + 1})
	}
	if hi != nil && prev != nil && bytes.Compare(prev, hi) >= 0 {
		return damaged("%s: its last key %q does not sort below %q, what its parent branch page holds for the next page", name, clip(prev), clip(hi))
	}
	return nil
}

// checkFreelist checks that every page id on the freelist (whose header
// checkFile checked) is in the file, listed once and not in use by the
// tree or by the freelist itself: bbolt writes over a free page, so one
// still in use would be overwritten, and it hands a page listed twice to
// two writes of one transaction, which then share it. The freelist's own
// pages must not be in the tree either: bbolt frees them at the next
// commit.
func (w *treeWalker) checkFreelist(id uint64) error {
	h, err := readPageHeader(w.r, id, w.ps)
	if err != nil {
		return err
	}
	for p := id; p <= id+uint64(h.overflow); p++ {
		if w.reached(p) {
			return damaged("page %d is both in the tree and part of the freelist page %d", p, id)
		}
		w.seen[p/64] |= 1 << (p % 64)
	}
	p, err := w.read(id, h)
	if err != nil {
		return err
	}
	n := uint64(len(p))
	ne := binary.NativeEndian
	count, start := uint64(h.count), uint64(boltPageHeader)
	if count == 0xFFFF {
		count, start = ne.Uint64(p[boltPageHeader:]), boltPageHeader+8
	}
	if start+count*8 > n {
		return damaged("the freelist page %d claims %d entries, more than it holds", id, count)
	}
	listed := make([]uint64, len(w.seen))
	for i := uint64(0); i < count; i++ {
		free := ne.Uint64(p[start+i*8:])
		if free < 2 || free >= w.pages {
			return damaged("the freelist holds page %d, outside the %d pages of the file", free, w.pages)
		}
		if free >= id && free <= id+uint64(h.overflow) {
			return damaged("the freelist page %d holds its own page %d", id, free)
		}
		if w.reached(free) {
			return damaged("page %d is both free and in use", free)
		}
		if listed[free/64]&(1<<(free%64)) != 0 {
			return damaged("the freelist holds page %d twice", free)
		}
		listed[free/64] |= 1 << (free % 64)
	}
	return nil
}
