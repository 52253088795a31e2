package loadgen_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/topgun-go/topgun/client"
	"github.com/topgun-go/topgun/client/loadgen"
	"github.com/topgun-go/topgun/server/wire"
)

// countRecords returns how many records the maps prefix0..prefix{maps-1}
// hold, as a fresh client syncs them from the server, and checks that each
// is a live valueBytes-long string.
func countRecords(t *testing.T, url string, prefix string, maps, valueBytes int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := client.DefaultOptions()
	opts.Logger = testLogger(t)
	opts.Reconnect = false
	c, err := client.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	total := 0
	for i := range maps {
		res, err := c.SyncMap(ctx, prefix+strconv.Itoa(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Unanswered > 0 {
			t.Fatalf("sync of map %d: %d bucket requests unanswered", i, res.Unanswered)
		}
		for _, r := range res.Records {
			if s, ok := r.Record.Value.(string); !ok || len(s) != valueBytes {
				t.Fatalf("record %s holds %T %v, want a %d-byte string", r.Key, r.Record.Value, r.Record.Value, valueBytes)
			}
		}
		total += len(res.Records)
	}
	return total
}

func TestRun_countsAcknowledgedOps(t *testing.T) {
	t.Parallel()
	url := startServer(t, map[string]string{"STORAGE_BACKEND": "null"})
	var progress bytes.Buffer
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		URL: url, Connections: 4, BatchSize: 10, Maps: 3, ValueBytes: 64,
		Duration: 1500 * time.Millisecond, Progress: &progress, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Ops == 0 || res.Ops != res.Batches*10 {
		t.Errorf("Ops = %d for %d batches of 10, want a positive multiple", res.Ops, res.Batches)
	}
	if res.Errors != 0 || res.Rejected != 0 || res.FirstError != nil {
		t.Errorf("errors %d, rejected %d, first %v; want none", res.Errors, res.Rejected, res.FirstError)
	}
	if res.AckLevel != "APPLIED" {
		t.Errorf("AckLevel = %q, want APPLIED on the null backend", res.AckLevel)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99/2 {
		t.Errorf("latency p50 %v p99 %v max %v is not ordered", res.P50, res.P99, res.Max)
	}
	if res.Elapsed < 1500*time.Millisecond || res.Elapsed > 10*time.Second {
		t.Errorf("Elapsed = %v, want the 1.5s duration plus the last acks", res.Elapsed)
	}
	if got := float64(res.Ops) / res.Elapsed.Seconds(); got != res.OpsPerSec {
		t.Errorf("OpsPerSec = %v, want Ops/Elapsed = %v", res.OpsPerSec, got)
	}
	// Every acknowledged op is a distinct record on the server.
	if n := countRecords(t, url, "loadgen-", 3, 64); int64(n) != res.Ops {
		t.Errorf("the server holds %d records, the run counted %d acknowledged ops", n, res.Ops)
	}
	// Not a terminal: one plain line per second.
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) < 1 || !strings.HasPrefix(lines[0], "loadgen: ") || strings.Contains(progress.String(), "\r") {
		t.Errorf("progress output %q, want lines starting with \"loadgen: \" and no carriage returns", progress.String())
	}
}

func TestRun_maxOpsOnRedb(t *testing.T) {
	t.Parallel()
	url := startServer(t, map[string]string{"TOPGUN_REDB_PATH": filepath.Join(t.TempDir(), "data.redb")})
	start := time.Now()
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		URL: url, Connections: 3, BatchSize: 100, Maps: 2, MapPrefix: "capped-",
		Duration: 60 * time.Second, MaxOps: 1050, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("a 1050-op run took %v: MaxOps did not end it", took)
	}
	if res.Ops != 1050 || res.Batches != 11 || res.Errors != 0 {
		t.Errorf("Ops %d in %d batches with %d errors, want 1050 in 11 (10 full, 1 of 50) and none", res.Ops, res.Batches, res.Errors)
	}
	if res.AckLevel != string(wire.Persisted) {
		t.Errorf("AckLevel = %q, want PERSISTED on redb", res.AckLevel)
	}
	if n := countRecords(t, url, "capped-", 2, 100); n != 1050 {
		t.Errorf("the server holds %d records, want 1050", n)
	}
}

func TestRun_canceled(t *testing.T) {
	t.Parallel()
	url := startServer(t, map[string]string{"STORAGE_BACKEND": "null"})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(700*time.Millisecond, cancel)
	start := time.Now()
	res, err := loadgen.Run(ctx, loadgen.Options{URL: url, Connections: 2, Duration: time.Minute, Logger: testLogger(t)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("Run returned %v after the cancel", took)
	}
	if res.Errors != 0 {
		t.Errorf("cancelling counted %d errors (%v), want none", res.Errors, res.FirstError)
	}
	t.Log(res)
}

func TestRun_unreachable(t *testing.T) {
	t.Parallel()
	// A port kept by a listener that hangs up at once: closed, it could
	// be taken by another test's server meanwhile.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	_, err = loadgen.Run(context.Background(), loadgen.Options{URL: "ws://" + addr + "/ws", Duration: time.Second, DialTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "loadgen: dial") {
		t.Fatalf("err = %v, want a dial error", err)
	}
}

func TestRun_authentication(t *testing.T) {
	t.Parallel()
	const secret = "loadgen-test-secret"
	url := startServer(t, map[string]string{"STORAGE_BACKEND": "null", "TOPGUN_NO_AUTH": "", "JWT_SECRET": secret})
	// Ended by MaxOps, not by a short Duration that a loaded machine may
	// spend before the first batch.
	opts := loadgen.Options{URL: url, Duration: time.Minute, MaxOps: 5, Logger: testLogger(t)}
	if _, err := loadgen.Run(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Errorf("without a token: err = %v, want one that asks for --token", err)
	}
	opts.Token = "not-a-jwt"
	if _, err := loadgen.Run(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "refused the token") {
		t.Errorf("with a bad token: err = %v, want a refusal", err)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bench", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	opts.Token = token
	res, err := loadgen.Run(context.Background(), opts)
	if err != nil || res.Ops != 5 {
		t.Fatalf("with a valid token: %v, %v; want 5 ops", res, err)
	}
}

func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts loadgen.Options
		want string // substring of the error; "" for valid
	}{
		{"defaults", loadgen.Options{URL: "ws://127.0.0.1:8080/ws"}, ""},
		{"no URL", loadgen.Options{}, "URL is empty"},
		{"http URL", loadgen.Options{URL: "http://127.0.0.1:8080/"}, "not a WebSocket URL"},
		{"negative connections", loadgen.Options{URL: "ws://h:1/", Connections: -1}, "Connections is -1"},
		{"negative duration", loadgen.Options{URL: "ws://h:1/", Duration: -time.Second}, "Duration is -1s"},
		{"negative max ops", loadgen.Options{URL: "ws://h:1/", MaxOps: -5}, "MaxOps is -5"},
		{"frame too large", loadgen.Options{URL: "ws://h:1/", BatchSize: 10000, ValueBytes: 1000}, "lower BatchSize or ValueBytes"},
		{"several problems", loadgen.Options{Maps: -2, ValueBytes: -1}, "Maps is -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			err := o.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				d := loadgen.DefaultOptions()
				if o.Connections != d.Connections || o.BatchSize != d.BatchSize || o.Maps != d.Maps || o.ValueBytes != d.ValueBytes || o.Duration != d.Duration {
					t.Errorf("defaults not filled in: %+v", o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "loadgen: ") {
				t.Errorf("err = %v, want one from loadgen containing %q", err, tc.want)
			}
		})
	}
}

// A server whose TOPGUN_MAX_BATCH_OPS is below the batch size applies each
// batch up to its limit and acknowledges up to the last op applied,
// expecting the rest again (as TopGun's client sends it). Every batch then
// completes: no batch is an error and every op sent is stored.
func TestRun_batchOverServerLimitIsCompleted(t *testing.T) {
	t.Parallel()
	url := startServer(t, map[string]string{"STORAGE_BACKEND": "null", "TOPGUN_MAX_BATCH_OPS": "7"})
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		URL: url, Connections: 2, BatchSize: 20, ValueBytes: 16, Duration: time.Minute, MaxOps: 100,
		AckTimeout: 20 * time.Second, Logger: testLogger(t),
	})
	t.Log(res)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 100 || res.Batches != 5 || res.Errors != 0 {
		t.Errorf("Ops %d, Batches %d, Errors %d (first %v); want 100 ops in 5 batches, no error", res.Ops, res.Batches, res.Errors, res.FirstError)
	}
	if n := countRecords(t, url, "loadgen-", 1, 16); n != 100 {
		t.Errorf("the server holds %d records, want 100", n)
	}
}
