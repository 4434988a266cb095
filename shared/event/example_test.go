package event_test

import (
	"fmt"
	"time"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/event"
)

func ExampleFromChange() {
	c := &change.Change{
		Database: "shop", Schema: "public", Table: "users", Op: change.Update, Identity: change.IdentityFull,
		XID: 234567891, CommitLSN: 0x16_B374D848, Seq: 0,
		CommitTime: time.Date(2021, 5, 1, 17, 1, 22, 131231000, time.UTC),
		Columns: []change.Column{
			{Name: "id", Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
			{Name: "email", Type: "varchar", Base: "varchar", Kind: change.KindBase},
		},
		New: []change.Value{{Text: "1"}, {Text: "ben_new@example.com"}},
		Old: []change.Value{{Text: "1"}, {Text: "ben@example.com"}},
	}
	ev, err := event.FromChange(c, event.Config{})
	if err != nil {
		panic(err)
	}
	fmt.Println(ev.Source, ev.DetailType, ev.Resources, ev.EntrySize())
	fmt.Println(string(ev.Detail))
	// Output:
	// walbridge.database DatabaseEvent [shop] 457
	// {"txnid":234567891,"timestamp":"2021-05-01T17:01:22.131231+00:00","schema":"public","table":"users","operation":"update","newValues":{"id":{"type":"integer","value":1},"email":{"type":"string","value":"ben_new@example.com"}},"oldValues":{"id":{"type":"integer","value":1},"email":{"type":"string","value":"ben@example.com"}},"changedValues":["email"],"lsn":"16/B374D848","seq":0,"changedValuesComplete":true}
}
