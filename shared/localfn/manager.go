package localfn

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/walbridge/walbridge/shared/localbus"
)

// Manager keeps running the functions that the local bus's rules target,
// following the rules as they are reloaded.
type Manager struct {
	opts Options
	// out gives each function's output writer, by logical ID.
	out func(id string) io.Writer
	// report receives what the manager does: builds, starts, and the
	// functions it cannot run and why.
	report io.Writer

	mu      sync.Mutex
	closed  bool
	running map[string]*Function // by Spec.Key
	said    map[string]string    // what was last reported per key, so a reload does not repeat it
}

// NewManager returns a manager starting functions with opts, each with its
// output going to out(logical ID).
func NewManager(opts Options, out func(id string) io.Writer, report io.Writer) *Manager {
	return &Manager{opts: opts, out: out, report: report, running: map[string]*Function{}, said: map[string]string{}}
}

// Attach starts each function that a rule targets and that can run here
// (building it first), builds again and restarts one whose source changed,
// stops those no rule targets any more, and returns the rules with the
// targets that run carrying their invocation URL (Target.Function). A
// function that cannot run here, or whose build fails, stays a named target
// and is reported once (again when its source changes). After Close it
// returns rules as they are.
func (m *Manager) Attach(ctx context.Context, rules []localbus.Rule) []localbus.Rule {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return rules
	}
	specs := map[string]map[string]Spec{} // template → logical ID → spec
	why := map[string]map[string]error{}
	wanted := map[string]bool{}
	out := make([]localbus.Rule, len(rules))
	for i, r := range rules {
		r.Targets = append([]localbus.Target(nil), r.Targets...)
		for j := range r.Targets {
			t := &r.Targets[j]
			if t.Resource == "" || (t.ResourceType != "AWS::Serverless::Function" && t.ResourceType != "AWS::Lambda::Function") {
				continue
			}
			if _, ok := specs[r.File]; !ok {
				list, notRunnable, err := Specs(r.File)
				if err != nil {
					m.say(r.File, fmt.Sprintf("functions of %s not run: %v", r.File, err))
				}
				specs[r.File], why[r.File] = map[string]Spec{}, notRunnable
				for _, s := range list {
					specs[r.File][s.ID] = s
				}
			}
			s, ok := specs[r.File][t.Resource]
			if !ok {
				if err := why[r.File][t.Resource]; err != nil {
					m.say(r.File+"#"+t.Resource, fmt.Sprintf("%s (%s) is only named, not run: %v", t.Resource, r.File, err))
				}
				continue
			}
			f := m.ensure(ctx, s)
			if f == nil {
				continue
			}
			wanted[s.Key()] = true
			t.URL, t.Function = f.URL, true
		}
		out[i] = r
	}
	for key, f := range m.running {
		if !wanted[key] {
			f.Stop()
			delete(m.running, key)
			m.say(key, fmt.Sprintf("%s (%s) stopped: no rule targets it now", f.Spec.ID, f.Spec.Template))
		}
	}
	return out
}

// ensure returns s running from its current source, or nil when it
// cannot be built or started.
func (m *Manager) ensure(ctx context.Context, s Spec) *Function {
	stamp := SourceStamp(s)
	if f := m.running[s.Key()]; f != nil {
		select {
		case <-f.done:
			m.say(s.Key(), fmt.Sprintf("%s (%s) had exited; starting it again", s.ID, s.Template))
		default:
			if f.stamp == stamp {
				return f
			}
		}
		f.Stop()
		delete(m.running, s.Key())
	}
	if m.said[s.Key()] == "failed "+stamp {
		return nil // the same source failed before: wait for an edit
	}
	fmt.Fprintf(m.report, "building %s (%s, %s) to run it locally\n", s.ID, s.Template, s.Kind)
	o := m.opts
	o.Out = m.out(s.ID)
	f, err := Start(ctx, s, o)
	if err != nil {
		fmt.Fprintf(m.report, "%s (%s) is only named, not run: %v\n", s.ID, s.Template, err)
		m.said[s.Key()] = "failed " + stamp
		return nil
	}
	m.running[s.Key()] = f
	m.said[s.Key()] = ""
	fmt.Fprintf(m.report, "%s runs locally under aws-lambda-rie: events its rules match invoke it\n", s.ID)
	return f
}

// say reports a line once per key until it changes.
func (m *Manager) say(key, line string) {
	if m.said[key] == line {
		return
	}
	m.said[key] = line
	fmt.Fprintln(m.report, line)
}

// Close stops every function.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for key, f := range m.running {
		f.Stop()
		delete(m.running, key)
	}
}
