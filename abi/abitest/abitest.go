// Package abitest is the conformance suite of the storage contract: the
// named cases every backend runs (natively under go test, through the wasm
// host, and from the plugin CLI), a model test that applies random
// operations to a backend and to the in-memory reference backend
// (plugins/null) and compares every result, and the shared benchmarks.
//
// A backend's test runs the whole suite with one call:
//
//	func TestConformance(t *testing.T) {
//		abitest.RunConformance(t, abitest.Harness{
//			Open: func(t abitest.TB) abi.Backend { ... a fresh, empty backend ... },
//		})
//	}
//
// Backends add tests only for what is theirs alone; the core semantics of
// the contract are tested here, once. Optional behaviour is tested only when
// the backend declares it (durability needs CapDurable and Harness.Reopen)
// or implements it (the Shared cases need abi.CheckedApplier or
// abi.Watcher, and Watch also Harness.OpenShared); the other cases are
// skipped with a message saying why.
//
// # Order
//
// The suite requires Scan to return keys in byte order (the order of Go's
// string comparison) and ListMaps to be sorted the same way: every built-in
// backend orders byte-wise, and the model test compares scans with the
// reference backend record by record.
//
// # Reproducing a model failure
//
// The model test seeds its random source from the clock unless
// TOPGUN_MODEL_SEED is set. Every failure message names the seed; set
// TOPGUN_MODEL_SEED to it to replay the same operations.
//
// The package imports only the standard library, abi and plugins/null, so
// it builds for GOOS=wasip1 GOARCH=wasm as well.
package abitest

import (
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// TB is the subset of testing.TB the cases use; *testing.T satisfies it, and
// so does the suite's own runner used by Run. Fatalf, FailNow and Skipf stop
// the case (runtime.Goexit), so call them only from the case's goroutine;
// Errorf and Logf may be called from any goroutine.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	FailNow()
	Failed() bool
	Cleanup(func())
}

// Harness tells the suite how to get backends.
type Harness struct {
	// Open opens a fresh, empty backend for one case. The suite closes it
	// (Close is idempotent). Open may call t.Fatalf or t.Skipf.
	Open func(t TB) abi.Backend
	// Reopen closes b and opens the same storage again. Nil for backends
	// that do not declare CapDurable.
	Reopen func(t TB, b abi.Backend) abi.Backend
	// OpenShared opens another backend on the storage of b, which stays
	// open: a second process sharing it. Nil for backends that do not
	// declare CapShared; the cases of abi.Watcher need it.
	OpenShared func(t TB, b abi.Backend) abi.Backend
	// Short trims the heaviest cases (fewer model steps, fewer goroutines,
	// no values or batches at the exact limits) for slow backends.
	Short bool
}

// Case is one named conformance case.
type Case struct {
	// Name is the case's name, like "Get/NotFound".
	Name string
	// Core marks the cases of the minimal subset: the basic semantics,
	// quick on every backend.
	Core bool
	// Run runs the case. It opens its own backends through h.
	Run func(t TB, h Harness)
}

// Cases returns every case of the suite, in a fixed order. The model test is
// one of them, "Model/Random".
func Cases() []Case {
	return []Case{
		{Name: "Describe", Core: true, Run: testDescribe},
		{Name: "Get/NotFound", Core: true, Run: testGetNotFound},
		{Name: "Get/Order", Core: true, Run: testGetOrder},
		{Name: "Get/InvalidArgument", Run: testGetInvalid},
		{Name: "Put/Get", Core: true, Run: testPutGet},
		{Name: "Put/Overwrite", Core: true, Run: testPutOverwrite},
		{Name: "Put/ValueOwnership", Run: testPutValueOwnership},
		{Name: "Delete", Core: true, Run: testDelete},
		{Name: "Batch/Atomicity", Core: true, Run: testBatchAtomicity},
		{Name: "Batch/LaterWins", Core: true, Run: testBatchLaterWins},
		{Name: "Batch/Empty", Run: testBatchEmpty},
		{Name: "Batch/Limits", Run: testBatchLimits},
		{Name: "Scan/Empty", Core: true, Run: testScanEmpty},
		{Name: "Scan/Order", Core: true, Run: testScanOrder},
		{Name: "Scan/Paging", Core: true, Run: testScanPaging},
		{Name: "Scan/LargeRecord", Run: testScanLargeRecord},
		{Name: "Scan/Cursor", Run: testScanCursor},
		{Name: "Scan/Backup", Run: testScanBackup},
		{Name: "Scan/WritesBetweenPages", Run: testScanWritesBetweenPages},
		{Name: "Scan/InvalidArgument", Run: testScanInvalid},
		{Name: "Names/Weird", Core: true, Run: testNamesWeird},
		{Name: "Value/Empty", Core: true, Run: testValueEmpty},
		{Name: "Value/Large", Run: testValueLarge},
		{Name: "Backup/Separation", Core: true, Run: testBackupSeparation},
		{Name: "ListMaps", Core: true, Run: testListMaps},
		{Name: "ListExpired", Core: true, Run: testListExpired},
		{Name: "ListExpired/Limit", Run: testListExpiredLimit},
		{Name: "Context/Canceled", Core: true, Run: testContextCanceled},
		{Name: "Context/DeadlineExceeded", Run: testContextDeadline},
		{Name: "Close/UseAfterClose", Core: true, Run: testUseAfterClose},
		{Name: "Durability/Reopen", Run: testDurability},
		{Name: "Concurrency/Writers", Run: testConcurrency},
		{Name: "Shared/ApplyChecked", Run: testApplyChecked},
		{Name: "Shared/ApplyChecked/Writers", Run: testApplyCheckedWriters},
		{Name: "Shared/Watch", Run: testWatch},
		{Name: "Shared/Watch/Stop", Run: testWatchStop},
		{Name: "Model/Random", Run: testModel},
	}
}

// RunConformance runs every case of Cases as a subtest of t, in order (the
// subtests do not call t.Parallel).
func RunConformance(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("abitest: Harness.Open is nil; set it to a function that opens a fresh, empty backend")
	}
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) { c.Run(t, h) })
	}
}
