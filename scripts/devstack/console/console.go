// Package console is scripts/dev's web console: one page, served from files
// embedded in the binary (plain HTML, CSS and JavaScript, nothing fetched
// from elsewhere, no build step), that shows the local pipeline as it runs.
//
//   - the live event stream from the local bus, one compact row per event
//     that expands into its JSON, filtered by table, operation and text;
//   - per-table counts; the rules each event matched and its deliveries
//     (a handler's answer or error included);
//   - a pattern playground: rulecheck's problems and suggestions as the
//     pattern is typed, and which recent events it matches;
//   - pipeline health (WAL the slot retains, the confirmed position's age,
//     Kinesis records written, commit-to-bus lag) and backfill progress.
//
// The page follows the server through server-sent events (GET /api/stream):
// a snapshot first, then each event, delivery and health reading. A client
// that falls behind is disconnected; the browser reconnects and gets a new
// snapshot, so it never shows a stream with holes.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/walbridge/walbridge/shared/localbus"
	"github.com/walbridge/walbridge/shared/pattern"
)

//go:embed static
var static embed.FS

// Health is the pipeline's state beside the bus. A field the console could
// not read is left out, with the reason in Problems.
type Health struct {
	WALRetainedBytes    *int64     `json:"walRetainedBytes,omitempty"`
	ConfirmedLSN        string     `json:"confirmedLsn,omitempty"`
	ConfirmedAgeSeconds *float64   `json:"confirmedAgeSeconds,omitempty"`
	KinesisRecords      *float64   `json:"kinesisRecords,omitempty"`
	Backfills           []Backfill `json:"backfills"`
	Problems            []string   `json:"problems,omitempty"`
	// Events, the events per table (schema.table, or the source of other
	// events) and the lag from commit to the bus (p50 and the latest, over
	// the last 100 events) are the console's own.
	Events    int            `json:"events"`
	Tables    map[string]int `json:"tables"`
	LagP50Ms  *float64       `json:"lagP50Ms,omitempty"`
	LagLastMs *float64       `json:"lagLastMs,omitempty"`
	ReadAt    string         `json:"readAt"`
}

// Backfill is one backfill's progress.
type Backfill struct {
	ID            int64   `json:"id"`
	Table         string  `json:"table"`
	State         string  `json:"state"`
	RowsDone      int64   `json:"rowsDone"`
	Estimate      int64   `json:"estimate"`
	RowsPerSecond float64 `json:"rowsPerSecond"`
}

// Options shape a Server.
type Options struct {
	// Bus is the local bus whose events the console shows.
	Bus *localbus.Bus
	// Health reads the pipeline's state outside the bus; nil shows none.
	Health func(ctx context.Context) Health
	// Interval is how often health is read and pushed (default 2 s).
	Interval time.Duration
	// Keep is how many recent events the console keeps (default 1000).
	Keep int
}

// item is one event as the page gets it.
type item struct {
	Seq      int              `json:"seq"`
	Received time.Time        `json:"received"`
	LagMs    *float64         `json:"lagMs,omitempty"` // commit timestamp → accepted by the bus
	Bus      string           `json:"bus"`
	Event    json.RawMessage  `json:"event"`
	Matches  []localbus.Match `json:"matches"`
	ID       string           `json:"id"`
}

// Server serves the console. Create it with New, before the bus takes
// events, and Close it.
type Server struct {
	opts    Options
	files   http.Handler
	stop    func()
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	items   []item
	deliv   []localbus.Delivery
	seq     int
	health  Health
	tables  map[string]int
	clients map[*client]struct{}
}

type client struct {
	frames chan []byte
	gone   chan struct{} // closed when the client fell behind
	once   sync.Once
}

// New starts watching the bus and reading health.
func New(opts Options) *Server {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Keep <= 0 {
		opts.Keep = 1000
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is part of the build
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opts: opts, files: http.FileServer(http.FS(sub)), cancel: cancel, done: make(chan struct{}), clients: map[*client]struct{}{}, tables: map[string]int{}}
	s.stop = opts.Bus.Watch(localbus.Watchers{Record: s.record, Delivery: s.delivery})
	go s.readHealth(ctx)
	return s
}

// Close stops watching and reading, and ends the streams.
func (s *Server) Close() {
	s.stop()
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		c.drop()
	}
}

func (c *client) drop() { c.once.Do(func() { close(c.gone) }) }

func (s *Server) record(rec localbus.Record) {
	now := time.Now().UTC()
	ev, _ := json.Marshal(rec.Event)
	it := item{Received: now, Bus: rec.Bus, Event: ev, Matches: rec.Matches, ID: rec.Event.ID}
	var d struct {
		Timestamp     string `json:"timestamp"`
		Schema, Table string
	}
	table := rec.Event.Source
	if json.Unmarshal(rec.Event.Detail, &d) == nil && d.Table != "" {
		table = d.Schema + "." + d.Table
	}
	if d.Timestamp != "" {
		if t, err := time.Parse(time.RFC3339Nano, d.Timestamp); err == nil {
			lag := float64(now.Sub(t).Microseconds()) / 1000
			it.LagMs = &lag
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	it.Seq = s.seq
	s.tables[table]++
	s.items = append(s.items, it)
	if len(s.items) > s.opts.Keep {
		s.items = s.items[len(s.items)-s.opts.Keep:]
	}
	s.broadcast("record", it)
}

func (s *Server) delivery(d localbus.Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliv = append(s.deliv, d)
	if len(s.deliv) > s.opts.Keep {
		s.deliv = s.deliv[len(s.deliv)-s.opts.Keep:]
	}
	s.broadcast("delivery", d)
}

// broadcast queues a frame for every client; s.mu is held. A client whose
// queue is full is dropped (its browser reconnects to a new snapshot).
func (s *Server) broadcast(name string, v any) {
	f := frame(name, v)
	for c := range s.clients {
		select {
		case c.frames <- f:
		default:
			c.drop()
			delete(s.clients, c)
		}
	}
}

func frame(name string, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		data, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return []byte(fmt.Sprintf("event: %s\ndata: %s\n\n", name, data))
}

func (s *Server) readHealth(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		var h Health
		if s.opts.Health != nil {
			hctx, cancel := context.WithTimeout(ctx, s.opts.Interval)
			h = s.opts.Health(hctx)
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.addOwnFigures(&h)
		h.ReadAt = time.Now().UTC().Format(time.RFC3339)
		s.health = h
		s.broadcast("health", h)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// addOwnFigures fills the console's own figures; s.mu is held.
func (s *Server) addOwnFigures(h *Health) {
	h.Events = s.seq
	h.Tables = make(map[string]int, len(s.tables))
	for t, n := range s.tables {
		h.Tables[t] = n
	}
	var lags []float64
	for i := len(s.items) - 1; i >= 0 && len(lags) < 100; i-- {
		if l := s.items[i].LagMs; l != nil {
			if len(lags) == 0 {
				last := *l
				h.LagLastMs = &last
			}
			lags = append(lags, *l)
		}
	}
	if len(lags) > 0 {
		sort.Float64s(lags)
		p50 := lags[len(lags)/2]
		h.LagP50Ms = &p50
	}
	if h.Backfills == nil {
		h.Backfills = []Backfill{}
	}
}

// ServeHTTP serves the page, its files, the stream and the playground.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/stream":
		s.stream(w, r)
	case "/api/pattern":
		s.pattern(w, r)
	default:
		s.files.ServeHTTP(w, r)
	}
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	c := &client{frames: make(chan []byte, 1024), gone: make(chan struct{})}
	s.mu.Lock()
	s.addOwnFigures(&s.health) // counts as of now
	snapshot := frame("snapshot", struct {
		Items      []item              `json:"items"`
		Deliveries []localbus.Delivery `json:"deliveries"`
		Health     Health              `json:"health"`
	}{append([]item{}, s.items...), append([]localbus.Delivery{}, s.deliv...), s.health})
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	if _, err := w.Write(snapshot); err != nil {
		return
	}
	flusher.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.gone:
			return
		case f := <-c.frames:
			if _, err := w.Write(f); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// patternResult is the playground's answer.
type patternResult struct {
	// Problems are rulecheck's: EventBridge's rules and the DatabaseEvent
	// contract, with suggestions ("did you mean detail.operation?").
	Problems []*pattern.FieldError `json:"problems"`
	// Valid says EventBridge would accept the pattern; Matches are the
	// recent events (by seq) it matches.
	Valid   bool  `json:"valid"`
	Matches []int `json:"matches"`
}

func (s *Server) pattern(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST a pattern", http.StatusMethodNotAllowed)
		return
	}
	text, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		http.Error(w, "pattern too large", http.StatusRequestEntityTooLarge)
		return
	}
	res := patternResult{Problems: pattern.CheckJSON(text, pattern.CheckOptions{}), Matches: []int{}}
	if res.Problems == nil {
		res.Problems = pattern.Errors{}
	}
	if p, err := pattern.Parse(text); err == nil {
		res.Valid = true
		s.mu.Lock()
		items := append([]item{}, s.items...)
		s.mu.Unlock()
		for _, it := range items {
			if ok, err := p.Match(it.Event); err == nil && ok {
				res.Matches = append(res.Matches, it.Seq)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}
