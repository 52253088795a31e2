package host

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// TestConfinedFS checks the data directory's path checks directly: links
// that stay inside work, links that lead out (or dangle) are refused, and
// files that do not exist yet may be created only inside.
func TestConfinedFS(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "in.txt"), []byte("in"), 0o644))
	must(os.WriteFile(filepath.Join(root, "out.txt"), []byte("out"), 0o644))
	must(os.Symlink("sub/in.txt", filepath.Join(dir, "inside")))
	must(os.Symlink(filepath.Join(root, "out.txt"), filepath.Join(dir, "outside")))
	must(os.Symlink(root, filepath.Join(dir, "outdir")))
	must(os.Symlink(filepath.Join(root, "nothing-yet"), filepath.Join(dir, "dangling")))
	fsys, err := newConfinedFS(dir, nil, nil)
	must(err)

	open := []struct {
		path string
		flag experimentalsys.Oflag
		want experimentalsys.Errno
	}{
		{"sub/in.txt", experimentalsys.O_RDONLY, 0},
		{"inside", experimentalsys.O_RDONLY, 0},
		{"new.txt", experimentalsys.O_RDWR | experimentalsys.O_CREAT, 0},
		{"sub/new.txt", experimentalsys.O_RDWR | experimentalsys.O_CREAT, 0},
		{"outside", experimentalsys.O_RDONLY, experimentalsys.EPERM},
		{"outside", experimentalsys.O_RDWR | experimentalsys.O_TRUNC, experimentalsys.EPERM},
		{"outdir/out.txt", experimentalsys.O_RDONLY, experimentalsys.EPERM},
		{"outdir/new.txt", experimentalsys.O_RDWR | experimentalsys.O_CREAT, experimentalsys.EPERM},
		{"dangling", experimentalsys.O_RDWR | experimentalsys.O_CREAT, experimentalsys.EPERM},
		{"../out.txt", experimentalsys.O_RDONLY, experimentalsys.EPERM},
		{"sub/../../out.txt", experimentalsys.O_RDONLY, experimentalsys.EPERM},
	}
	for _, tc := range open {
		f, errno := fsys.OpenFile(tc.path, tc.flag, 0o644)
		if errno != tc.want {
			t.Errorf("OpenFile(%q) = %v, want %v", tc.path, errno, tc.want)
		}
		if f != nil {
			f.Close()
		}
	}
	if _, errno := fsys.Stat("outside"); errno != experimentalsys.EPERM {
		t.Errorf("Stat(outside) = %v, want EPERM", errno)
	}
	if _, errno := fsys.Lstat("outside"); errno != 0 {
		t.Errorf("Lstat(outside) = %v: the link itself is inside", errno)
	}
	if errno := fsys.Rename("sub/in.txt", "outdir/stolen.txt"); errno != experimentalsys.EPERM {
		t.Errorf("Rename into a linked directory outside = %v, want EPERM", errno)
	}
	if errno := fsys.Mkdir("outdir/x", 0o755); errno != experimentalsys.EPERM {
		t.Errorf("Mkdir through a link outside = %v, want EPERM", errno)
	}
	// A relative link inside may point outside from elsewhere: links are
	// neither moved nor hard-linked (sub/up -> .. is the root from sub,
	// the root's parent from the root).
	must(os.Symlink("..", filepath.Join(dir, "sub", "up")))
	if errno := fsys.Rename("sub/up", "up"); errno != experimentalsys.EPERM {
		t.Errorf("Rename of a link = %v, want EPERM", errno)
	}
	if errno := fsys.Link("sub/up", "up2"); errno != experimentalsys.EPERM {
		t.Errorf("Link of a link = %v, want EPERM", errno)
	}
	if errno := fsys.Rename("sub/in.txt", "sub/moved.txt"); errno != 0 {
		t.Errorf("Rename of a file = %v", errno)
	}
	if errno := fsys.Symlink("/etc/passwd", "mine"); errno != experimentalsys.EPERM {
		t.Errorf("Symlink = %v, want EPERM", errno)
	}
	if errno := fsys.Unlink("outside"); errno != 0 {
		t.Errorf("Unlink(outside) = %v: removing the link itself is allowed", errno)
	}
	if data, err := os.ReadFile(filepath.Join(root, "out.txt")); err != nil || string(data) != "out" {
		t.Errorf("the file outside is %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(root, "stolen.txt")); err == nil {
		t.Error("a file was moved outside")
	}
}

// Past the call's deadline, the data directory's files and the random
// source refuse I/O: one fd_write, fd_read or random_get may carry
// terabytes that nothing else could stop inside the host call.
func TestConfinedFS_ioStopsAtTheDeadline(t *testing.T) {
	t.Parallel()
	var past bool
	stop := func() bool { return past }
	fsys, err := newConfinedFS(t.TempDir(), stop, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, errno := fsys.OpenFile("f", experimentalsys.O_RDWR|experimentalsys.O_CREAT, 0o600)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer f.Close()
	buf := make([]byte, 4)
	if _, errno := f.Write(buf); errno != 0 {
		t.Fatalf("write before the deadline: %v", errno)
	}
	past = true
	if _, errno := f.Write(buf); errno != experimentalsys.EINTR {
		t.Fatalf("write past the deadline: %v, want EINTR", errno)
	}
	if _, errno := f.Pwrite(buf, 0); errno != experimentalsys.EINTR {
		t.Fatalf("pwrite past the deadline: %v, want EINTR", errno)
	}
	if _, errno := f.Read(buf); errno != experimentalsys.EINTR {
		t.Fatalf("read past the deadline: %v, want EINTR", errno)
	}
	if _, errno := f.Pread(buf, 0); errno != experimentalsys.EINTR {
		t.Fatalf("pread past the deadline: %v, want EINTR", errno)
	}
	if _, err := (deadlineReader{r: strings.NewReader("xxxx"), stop: stop}).Read(buf); err != errPastDeadline {
		t.Fatalf("random source past the deadline: %v", err)
	}
}

// Two instances of a multi_instance plugin share the data directory: one
// moving the directory that holds an operator's relative link to a
// shallower place (where the link leads outside) must not land between
// the other's path check and its open. The instances share one lock, as
// newInstance gives them.
func TestConfinedFS_movesDoNotRaceChecks(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	if err := os.MkdirAll(filepath.Join(dir, "a", "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "secret.txt"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	// From data/a/d, ../.. is data; moved to data/d, it is data's parent.
	if err := os.Symlink("../..", filepath.Join(dir, "a", "d", "up")); err != nil {
		t.Fatal(err)
	}
	var moves sync.RWMutex
	mover, err := newConfinedFS(dir, nil, &moves)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := newConfinedFS(dir, nil, &moves)
	if err != nil {
		t.Fatal(err)
	}
	done, stop := make(chan struct{}), make(chan struct{})
	defer func() { close(stop); <-done }()
	deadline := time.Now().Add(2 * time.Second)
	go func() {
		defer close(done)
		for i := 0; i < 50_000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			if e := mover.Rename("a/d", "d"); e != 0 {
				t.Errorf("Rename(a/d, d) = %v", e)
				return
			}
			if e := mover.Rename("d", "a/d"); e != 0 {
				t.Errorf("Rename(d, a/d) = %v", e)
				return
			}
		}
	}()
	buf := make([]byte, 16)
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		f, e := reader.OpenFile("d/up/secret.txt", experimentalsys.O_RDONLY, 0)
		if e != 0 {
			continue
		}
		n, _ := f.Read(buf)
		f.Close()
		t.Fatalf("an instance read %q outside its data directory while another moved a directory", buf[:n])
	}
}
