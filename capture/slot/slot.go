// Package slot prepares, inspects and removes what capture needs on the
// server: the prerequisites (wal_level, slots, the REPLICATION right, UTF8),
// the publication, replica identities of keyless tables, the DDL event
// trigger, and the pgoutput replication slot. Refusals are typed errors
// (KeylessTablesError, ErrPrerequisite, ...) whose texts speak PostgreSQL;
// the capture command turns them into advice about its flags.
package slot

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// KeylessPolicy is the user's choice for published tables that have neither a
// primary key nor a replica identity index. Once such a table is in a
// publication that publishes updates and deletes, PostgreSQL rejects every
// UPDATE and DELETE on it (SQLSTATE 55000), so setup never guesses.
type KeylessPolicy string

// Keyless policies.
const (
	KeylessRefuse  KeylessPolicy = ""        // stop and explain (default)
	KeylessFull    KeylessPolicy = "full"    // give them REPLICA IDENTITY FULL
	KeylessExclude KeylessPolicy = "exclude" // leave them out of the publication
)

// SetupOptions configures Setup.
type SetupOptions struct {
	Slot        string
	Publication string
	// Schemas or Tables ("schema.table") limit the publication; both empty
	// means every table (FOR ALL TABLES, or every ordinary table when
	// keyless tables are excluded).
	Schemas []string
	Tables  []string
	// ReplicaIdentityFull sets REPLICA IDENTITY FULL on every captured table
	// that lacks it, so events carry complete oldValues.
	ReplicaIdentityFull bool
	Keyless             KeylessPolicy
	// EventTrigger installs a DDL event trigger that applies the keyless
	// policy (and, for table-list publications, adds keyed tables) to tables
	// created later by migrations.
	EventTrigger bool
	// Leave, when set, names tables a table-list publication leaves out
	// (the column policy's skipped tables).
	Leave func(schema, table string) bool
	// Failover creates the slot as a failover slot (PostgreSQL 17+), which
	// a physical standby with sync_replication_slots keeps in step, so that
	// capture goes on from the new primary after a failover.
	Failover bool
}

// ErrNeedsVersion marks an option the server's PostgreSQL is too old for;
// the error names the version needed and the server's.
var ErrNeedsVersion = errors.New("needs a newer PostgreSQL")

// SetupReport says what Setup found and did.
type SetupReport struct {
	Actions []string // what changed, in order
	Notes   []string // what is fine as it is
}

// ErrPrerequisite marks a problem the user must fix on the server; the error
// text says exactly what to change.
var ErrPrerequisite = errors.New("prerequisite not met")

// ErrKeylessTables is what a KeylessTablesError Is: captured tables lack a
// key and no policy was chosen.
var ErrKeylessTables = errors.New("tables without a primary key or replica identity")

// KeylessTablesError lists the captured tables that have neither a primary
// key nor a replica identity, when no KeylessPolicy was chosen for them.
type KeylessTablesError struct {
	Tables []string // schema.table
}

func (e *KeylessTablesError) Error() string {
	return fmt.Sprintf("%v: %s; once published, PostgreSQL would reject every UPDATE and DELETE on them (SQLSTATE 55000)",
		ErrKeylessTables, strings.Join(e.Tables, ", "))
}

// Is makes errors.Is(err, ErrKeylessTables) true.
func (e *KeylessTablesError) Is(target error) bool { return target == ErrKeylessTables }

// ErrCannotExclude is returned when keyless tables are to be excluded from a
// FOR ALL TABLES publication, which cannot leave tables out.
var ErrCannotExclude = errors.New("a FOR ALL TABLES publication cannot exclude tables")

// ErrTriggerNeedsPolicy is returned when the event trigger is asked for
// without a keyless policy for it to apply.
var ErrTriggerNeedsPolicy = errors.New("the event trigger needs a keyless policy (full or exclude) to apply to new tables")

// ErrForeignSlot is returned when a slot of the configured name exists but
// is not a pgoutput slot of this database.
var ErrForeignSlot = errors.New("slot exists but is not a pgoutput slot of this database")

// Setup checks the server's prerequisites and creates the publication and
// slot. It is idempotent: what exists is checked and left alone.
func Setup(ctx context.Context, conn *pgx.Conn, opts SetupOptions) (*SetupReport, error) {
	rep := &SetupReport{}
	if err := CheckPrerequisites(ctx, conn, opts.Slot); err != nil {
		return nil, err
	}
	if opts.Failover {
		var version int
		if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
			return nil, fmt.Errorf("server version: %w", err)
		}
		if version < 170000 {
			return nil, fmt.Errorf("failover slots %w: PostgreSQL 17 or later, and this server runs %d", ErrNeedsVersion, version/10000)
		}
	}
	tables, err := CapturedTables(ctx, conn, opts.Publication, opts.Schemas, opts.Tables)
	if err != nil {
		return nil, err
	}
	var keyless []TableInfo
	for _, t := range tables {
		if t.Keyless() {
			keyless = append(keyless, t)
		}
	}
	if len(keyless) > 0 && opts.Keyless == KeylessRefuse && !opts.ReplicaIdentityFull {
		var names []string
		for _, t := range keyless {
			names = append(names, t.Name())
		}
		return nil, &KeylessTablesError{Tables: names}
	}

	// Replica identity first: the publication must never exist while a
	// keyless table in it would break the application.
	for _, t := range tables {
		if t.Identity == "f" || (!opts.ReplicaIdentityFull && !(t.Keyless() && opts.Keyless == KeylessFull)) {
			continue
		}
		if _, err := conn.Exec(ctx, "ALTER TABLE "+t.Ident()+" REPLICA IDENTITY FULL"); err != nil {
			return nil, fmt.Errorf("set REPLICA IDENTITY FULL on %s: %w", t.Name(), err)
		}
		rep.Actions = append(rep.Actions, "set REPLICA IDENTITY FULL on "+t.Name())
	}

	exclude := len(keyless) > 0 && opts.Keyless == KeylessExclude && !opts.ReplicaIdentityFull
	var pubExists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS(SELECT 1 FROM pg_publication WHERE pubname = $1)`, opts.Publication).Scan(&pubExists); err != nil {
		return nil, fmt.Errorf("look up publication: %w", err)
	}
	pub := pgx.Identifier{opts.Publication}.Sanitize()
	switch {
	case pubExists && exclude:
		for _, t := range keyless {
			if t.Published {
				if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pub+" DROP TABLE "+t.Ident()); err != nil {
					return nil, fmt.Errorf("drop keyless table %s from publication %s: %w: %w", t.Name(), opts.Publication, ErrCannotExclude, err)
				}
				rep.Actions = append(rep.Actions, "removed "+t.Name()+" from publication "+opts.Publication)
			}
		}
	case pubExists:
		rep.Notes = append(rep.Notes, "publication "+opts.Publication+" exists")
	default:
		stmt := "CREATE PUBLICATION " + pub
		switch {
		case len(opts.Tables) > 0 || exclude:
			var list []string
			for _, t := range tables {
				if !(exclude && t.Keyless()) && (opts.Leave == nil || !opts.Leave(t.Schema, t.Table)) {
					list = append(list, t.Ident())
				}
			}
			if len(list) == 0 {
				return nil, errors.New("no tables left to publish")
			}
			stmt += " FOR TABLE " + strings.Join(list, ", ")
		case len(opts.Schemas) > 0:
			var list []string
			for _, s := range opts.Schemas {
				list = append(list, pgx.Identifier{s}.Sanitize())
			}
			stmt += " FOR TABLES IN SCHEMA " + strings.Join(list, ", ")
		default:
			stmt += " FOR ALL TABLES"
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("%s: %w", stmt, err)
		}
		rep.Actions = append(rep.Actions, stmt)
	}

	if opts.EventTrigger {
		policy := opts.Keyless
		if opts.ReplicaIdentityFull {
			policy = KeylessFull
		}
		if policy == KeylessRefuse {
			return nil, ErrTriggerNeedsPolicy
		}
		if err := installEventTrigger(ctx, conn, opts.Publication, policy, opts.ReplicaIdentityFull); err != nil {
			return nil, err
		}
		rep.Actions = append(rep.Actions, "installed event trigger walbridge_new_tables ("+string(policy)+")")
	}

	var plugin, db *string
	err = conn.QueryRow(ctx, `SELECT plugin, database FROM pg_replication_slots WHERE slot_name = $1`, opts.Slot).Scan(&plugin, &db)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		create, what := `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, " (pgoutput)"
		if opts.Failover {
			create, what = `SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)`, " (pgoutput, failover)"
		}
		if _, err := conn.Exec(ctx, create, opts.Slot); err != nil {
			return nil, fmt.Errorf("create replication slot %q: %w", opts.Slot, err)
		}
		rep.Actions = append(rep.Actions, "created replication slot "+opts.Slot+what)
	case err != nil:
		return nil, fmt.Errorf("look up slot: %w", err)
	default:
		var cur string
		if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&cur); err != nil {
			return nil, err
		}
		if plugin == nil || *plugin != "pgoutput" || db == nil || *db != cur {
			return nil, fmt.Errorf("slot %q, database %s: %w", opts.Slot, cur, ErrForeignSlot)
		}
		rep.Notes = append(rep.Notes, "replication slot "+opts.Slot+" exists")
	}
	return rep, nil
}

// CheckPrerequisites verifies wal_level, a free slot (unless slot exists),
// the role's right to replicate and the UTF8 encoding capture relies on.
func CheckPrerequisites(ctx context.Context, conn *pgx.Conn, slot string) error {
	var walLevel, encoding, role string
	var maxSlots, usedSlots, maxSenders int
	var slotExists, canReplicate bool
	err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('server_encoding'), current_user,
		current_setting('max_replication_slots')::int,
		(SELECT count(*) FROM pg_replication_slots)::int,
		current_setting('max_wal_senders')::int,
		EXISTS(SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),
		(SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user)
		  OR pg_has_role(current_user, (SELECT oid FROM pg_roles WHERE rolname = 'rds_replication'), 'MEMBER') IS TRUE`, slot).
		Scan(&walLevel, &encoding, &role, &maxSlots, &usedSlots, &maxSenders, &slotExists, &canReplicate)
	if err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	var problems []string
	if walLevel != "logical" {
		problems = append(problems, fmt.Sprintf("wal_level is %q; it must be logical. Run: ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL "+
			"(RDS/Aurora: set rds.logical_replication = 1 in the DB parameter group and reboot)", walLevel))
	}
	if !slotExists && usedSlots >= maxSlots {
		problems = append(problems, fmt.Sprintf("all %d replication slots are in use (max_replication_slots = %d). Raise it: ALTER SYSTEM SET max_replication_slots = %d; and restart, or drop an unused slot",
			usedSlots, maxSlots, maxSlots+1))
	}
	if maxSenders < 1 {
		problems = append(problems, "max_wal_senders is 0. Run: ALTER SYSTEM SET max_wal_senders = 10; and restart")
	}
	if !canReplicate {
		problems = append(problems, fmt.Sprintf("role %s may not replicate. Run: ALTER ROLE %s WITH REPLICATION; (RDS/Aurora: GRANT rds_replication TO %s;)", role, pgx.Identifier{role}.Sanitize(), pgx.Identifier{role}.Sanitize()))
	}
	if encoding != "UTF8" {
		problems = append(problems, fmt.Sprintf("server_encoding is %s; capture needs a UTF8 database so that every value has a lossless JSON form", encoding))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  - %s", ErrPrerequisite, strings.Join(problems, "\n  - "))
	}
	return nil
}

// TableInfo describes an ordinary or partitioned table for setup and status.
type TableInfo struct {
	OID       uint32
	Schema    string
	Table     string
	Identity  string // pg_class.relreplident: d, n, f, i
	HasPK     bool
	HasRIIdx  bool // identity 'i' with a valid index
	Published bool
}

// Name is schema.table for messages.
func (t TableInfo) Name() string { return t.Schema + "." + t.Table }

// Ident is the quoted identifier for SQL.
func (t TableInfo) Ident() string { return pgx.Identifier{t.Schema, t.Table}.Sanitize() }

// Keyless reports a table whose UPDATEs and DELETEs PostgreSQL rejects once
// it is published: no usable replica identity.
func (t TableInfo) Keyless() bool {
	switch t.Identity {
	case "f":
		return false
	case "i":
		return !t.HasRIIdx
	case "n":
		return true
	default:
		return !t.HasPK
	}
}

// OldValues says what an UPDATE/DELETE event's oldValues will hold.
func (t TableInfo) OldValues() string {
	switch {
	case t.Identity == "f":
		return "complete"
	case t.Keyless():
		return "none (updates/deletes fail)"
	default:
		return "key columns only"
	}
}

// CapturedTables lists the tables setup would publish (the publication's
// tables when it exists and no filter is given; else user tables filtered by
// schemas/tables).
func CapturedTables(ctx context.Context, conn *pgx.Conn, publication string, schemas, tables []string) ([]TableInfo, error) {
	rows, err := conn.Query(ctx, `
		SELECT c.oid, n.nspname, c.relname, c.relreplident::text,
		  EXISTS(SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
		  EXISTS(SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident AND i.indisvalid),
		  EXISTS(SELECT 1 FROM pg_publication_tables p WHERE p.pubname = $1 AND p.schemaname = n.nspname AND p.tablename = c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'walbridge') AND n.nspname NOT LIKE 'pg\_%'
		ORDER BY 2, 3`, publication)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableInfo, error) {
		var t TableInfo
		err := r.Scan(&t.OID, &t.Schema, &t.Table, &t.Identity, &t.HasPK, &t.HasRIIdx, &t.Published)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	want := map[string]bool{}
	for _, t := range tables {
		if !strings.Contains(t, ".") {
			t = "public." + t
		}
		want[t] = true
	}
	inSchema := map[string]bool{}
	for _, s := range schemas {
		inSchema[s] = true
	}
	var out []TableInfo
	for _, t := range all {
		switch {
		case len(want) > 0:
			if !want[t.Name()] {
				continue
			}
			delete(want, t.Name())
		case len(inSchema) > 0:
			if !inSchema[t.Schema] {
				continue
			}
		}
		out = append(out, t)
	}
	if len(want) > 0 {
		var missing []string
		for t := range want {
			missing = append(missing, t)
		}
		sort.Strings(missing)
		return nil, fmt.Errorf("tables not found: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// installEventTrigger creates (or replaces) the DDL trigger that keeps new
// tables safe to publish. With policy full, a new table without a primary key
// gets REPLICA IDENTITY FULL before any row reaches it; with exclude it is
// left out (for table-list publications new keyed tables are added).
func installEventTrigger(ctx context.Context, conn *pgx.Conn, publication string, policy KeylessPolicy, allFull bool) error {
	body := fmt.Sprintf(`
CREATE SCHEMA IF NOT EXISTS walbridge;
CREATE OR REPLACE FUNCTION walbridge.on_new_table() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
  keyed boolean;
  all_tables boolean;
BEGIN
  SELECT puballtables INTO all_tables FROM pg_publication WHERE pubname = %[1]s;
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands()
           WHERE object_type = 'table' AND command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
             AND schema_name IS DISTINCT FROM 'walbridge'
  LOOP
    SELECT EXISTS(SELECT 1 FROM pg_index WHERE indrelid = r.objid AND indisprimary) INTO keyed;
    IF %[3]s OR (NOT keyed AND %[2]s = 'full') THEN
      EXECUTE format('ALTER TABLE %%s REPLICA IDENTITY FULL', r.object_identity);
      keyed := true;
    END IF;
    IF keyed AND all_tables IS FALSE THEN
      EXECUTE format('ALTER PUBLICATION %%I ADD TABLE %%s', %[1]s, r.object_identity);
    END IF;
  END LOOP;
END
$fn$;
DROP EVENT TRIGGER IF EXISTS walbridge_new_tables;
CREATE EVENT TRIGGER walbridge_new_tables ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
  EXECUTE FUNCTION walbridge.on_new_table();`,
		literal(publication), literal(string(policy)), map[bool]string{true: "true", false: "false"}[allFull])
	if _, err := conn.Exec(ctx, body); err != nil {
		return fmt.Errorf("install event trigger (needs superuser or rds_superuser): %w", err)
	}
	return nil
}

// literal quotes s as an SQL string literal (standard_conforming_strings).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
