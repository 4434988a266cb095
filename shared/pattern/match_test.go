package pattern

import (
	"os"
	"path/filepath"
	"testing"
)

// matchCase is one pattern/event pair. The cases follow the examples in
// EventBridge's "event patterns", "arrays", "null values" and "content
// filtering" documentation, rewritten as our own data, with a non-matching
// event beside each matching one.
type matchCase struct {
	name    string
	pattern string
	event   string
	want    bool
}

func TestMatch(t *testing.T) {
	const ec2 = `{"version":"0","id":"6a7e8feb","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"111122223333","time":"2017-12-22T18:43:48Z","region":"us-west-1","resources":["arn:aws:ec2:us-west-1:123456789012:instance/i-1"],"detail":{"instance-id":"i-1","state":"terminated"}}`
	cases := []matchCase{
		// Exact values, AND across fields, OR inside an array.
		{"exact source", `{"source":["aws.ec2"]}`, ec2, true},
		{"exact source other", `{"source":["aws.s3"]}`, ec2, false},
		{"or within array", `{"source":["aws.fargate","aws.ec2"]}`, ec2, true},
		{"and across fields", `{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"],"detail":{"state":["terminated"]}}`, ec2, true},
		{"and one field fails", `{"source":["aws.ec2"],"detail":{"state":["running"]}}`, ec2, false},
		{"absent field", `{"detail":{"size":["big"]}}`, ec2, false},
		{"absent parent", `{"extra":{"state":["terminated"]}}`, ec2, false},
		{"case sensitive", `{"source":["AWS.EC2"]}`, ec2, false},

		// Arrays in the event: non-empty intersection.
		{"event array intersects", `{"resources":["arn:x","arn:aws:ec2:us-west-1:123456789012:instance/i-1"]}`, ec2, true},
		{"event array disjoint", `{"resources":["arn:x","arn:y"]}`, ec2, false},
		{"nested event arrays flatten", `{"a":["x"]}`, `{"a":[["y"],["x"]]}`, true},

		// Null and empty string are different values.
		{"null matches null", `{"detail":{"responseElements":[null]}}`, `{"detail":{"eventVersion":"","responseElements":null}}`, true},
		{"empty matches empty", `{"detail":{"eventVersion":[""]}}`, `{"detail":{"eventVersion":"","responseElements":null}}`, true},
		{"empty not null", `{"detail":{"responseElements":[""]}}`, `{"detail":{"responseElements":null}}`, false},
		{"null not empty", `{"detail":{"eventVersion":[null]}}`, `{"detail":{"eventVersion":""}}`, false},
		{"null not absent", `{"detail":{"x":[null]}}`, `{"detail":{}}`, false},

		// Numbers and booleans compare by type and value.
		{"number equals number", `{"n":[300]}`, `{"n":3.0e2}`, true},
		{"number not string", `{"n":[300]}`, `{"n":"300"}`, false},
		{"string not number", `{"n":["300"]}`, `{"n":300}`, false},
		{"big number by text", `{"account":[123456789012345678]}`, `{"account":123456789012345678}`, true},
		{"bool true", `{"b":[true]}`, `{"b":true}`, true},
		{"bool not string", `{"b":[true]}`, `{"b":"true"}`, false},

		// prefix
		{"prefix", `{"time":[{"prefix":"2017-10-02"}]}`, `{"time":"2017-10-02T18:43:48Z"}`, true},
		{"prefix no", `{"time":[{"prefix":"2017-10-02"}]}`, `{"time":"2017-10-03T18:43:48Z"}`, false},
		{"prefix strings only", `{"n":[{"prefix":"1"}]}`, `{"n":123}`, false},
		{"prefix ignore case", `{"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}}`, `{"detail":{"service":"eventbridge"}}`, true},
		{"prefix ignore case upper", `{"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}}`, `{"detail":{"service":"EVENTBRIDGE"}}`, true},
		{"prefix ignore case no", `{"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}}`, `{"detail":{"service":"lambda"}}`, false},

		// suffix
		{"suffix", `{"FileName":[{"suffix":".png"}]}`, `{"FileName":"photo.png"}`, true},
		{"suffix no", `{"FileName":[{"suffix":".png"}]}`, `{"FileName":"photo.PNG"}`, false},
		{"suffix ignore case", `{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}`, `{"FileName":"photo.PNG"}`, true},
		{"suffix ignore case no", `{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}`, `{"FileName":"photo.jpg"}`, false},

		// equals-ignore-case
		{"equals ignore case", `{"Name":[{"equals-ignore-case":"alice"}]}`, `{"Name":"Alice"}`, true},
		{"equals ignore case no", `{"Name":[{"equals-ignore-case":"alice"}]}`, `{"Name":"Alicia"}`, false},

		// anything-but
		{"anything-but string", `{"detail":{"state":[{"anything-but":"initializing"}]}}`, `{"detail":{"state":"running"}}`, true},
		{"anything-but string excluded", `{"detail":{"state":[{"anything-but":"initializing"}]}}`, `{"detail":{"state":"initializing"}}`, false},
		{"anything-but absent", `{"detail":{"state":[{"anything-but":"initializing"}]}}`, `{"detail":{}}`, false},
		{"anything-but number", `{"detail":{"x-limit":[{"anything-but":123}]}}`, `{"detail":{"x-limit":456}}`, true},
		{"anything-but number excluded", `{"detail":{"x-limit":[{"anything-but":123}]}}`, `{"detail":{"x-limit":1.23e2}}`, false},
		{"anything-but number skips strings", `{"detail":{"x-limit":[{"anything-but":123}]}}`, `{"detail":{"x-limit":"abc"}}`, false},
		{"anything-but string list", `{"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}}`, `{"detail":{"state":"running"}}`, true},
		{"anything-but string list excluded", `{"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}}`, `{"detail":{"state":"overloaded"}}`, false},
		{"anything-but number list", `{"detail":{"x-limit":[{"anything-but":[100,200,300]}]}}`, `{"detail":{"x-limit":150}}`, true},
		{"anything-but number list excluded", `{"detail":{"x-limit":[{"anything-but":[100,200,300]}]}}`, `{"detail":{"x-limit":200}}`, false},
		{"anything-but any array element", `{"detail":{"state":[{"anything-but":"initializing"}]}}`, `{"detail":{"state":["initializing","running"]}}`, true},
		{"anything-but all array elements excluded", `{"detail":{"state":[{"anything-but":"initializing"}]}}`, `{"detail":{"state":["initializing"]}}`, false},
		{"anything-but prefix", `{"detail":{"state":[{"anything-but":{"prefix":"init"}}]}}`, `{"detail":{"state":"running"}}`, true},
		{"anything-but prefix excluded", `{"detail":{"state":[{"anything-but":{"prefix":"init"}}]}}`, `{"detail":{"state":"initializing"}}`, false},
		{"anything-but suffix", `{"FileName":[{"anything-but":{"suffix":".png"}}]}`, `{"FileName":"a.jpg"}`, true},
		{"anything-but suffix excluded", `{"FileName":[{"anything-but":{"suffix":".png"}}]}`, `{"FileName":"a.png"}`, false},
		{"anything-but ignore case", `{"state":[{"anything-but":{"equals-ignore-case":"initializing"}}]}`, `{"state":"running"}`, true},
		{"anything-but ignore case excluded", `{"state":[{"anything-but":{"equals-ignore-case":"initializing"}}]}`, `{"state":"INITIALIZING"}`, false},
		{"anything-but ignore case list", `{"state":[{"anything-but":{"equals-ignore-case":["stopped","overloaded"]}}]}`, `{"state":"Stopped"}`, false},
		{"anything-but wildcard", `{"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]}`, `{"FilePath":"/usr/bin/tool"}`, true},
		{"anything-but wildcard excluded", `{"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]}`, `{"FilePath":"/usr/lib/libc.so"}`, false},

		// numeric
		{"numeric range", `{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}]}}`, `{"detail":{"c-count":5}}`, true},
		{"numeric range low edge", `{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}]}}`, `{"detail":{"c-count":0}}`, false},
		{"numeric range high", `{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}]}}`, `{"detail":{"c-count":5.5}}`, false},
		{"numeric less", `{"detail":{"d-count":[{"numeric":["<",10]}]}}`, `{"detail":{"d-count":-3}}`, true},
		{"numeric equals exponent", `{"detail":{"x-limit":[{"numeric":["=",3.018e2]}]}}`, `{"detail":{"x-limit":301.8}}`, true},
		{"numeric equals no", `{"detail":{"x-limit":[{"numeric":["=",3.018e2]}]}}`, `{"detail":{"x-limit":301.9}}`, false},
		{"numeric ge", `{"n":[{"numeric":[">=",10,"<",20]}]}`, `{"n":10}`, true},
		{"numeric not string", `{"n":[{"numeric":[">",0]}]}`, `{"n":"5"}`, false},
		{"numeric all conditions", `{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}],"d-count":[{"numeric":["<",10]}],"x-limit":[{"numeric":["=",3.018e2]}]}}`, `{"detail":{"c-count":3,"d-count":9,"x-limit":301.8}}`, true},
		{"numeric one condition fails", `{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}],"d-count":[{"numeric":["<",10]}]}}`, `{"detail":{"c-count":3,"d-count":10}}`, false},

		// cidr
		{"cidr v4", `{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}`, `{"detail":{"sourceIPAddress":"10.0.0.255"}}`, true},
		{"cidr v4 outside", `{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}`, `{"detail":{"sourceIPAddress":"10.0.1.1"}}`, false},
		{"cidr not an ip", `{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}`, `{"detail":{"sourceIPAddress":"example.com"}}`, false},
		{"cidr v6", `{"ip":[{"cidr":"2001:db8::/32"}]}`, `{"ip":"2001:db8::1"}`, true},
		{"cidr v6 outside", `{"ip":[{"cidr":"2001:db8::/32"}]}`, `{"ip":"2001:db9::1"}`, false},

		// exists: leaf nodes only.
		{"exists false absent", `{"detail":{"c-count":[{"exists":false}]}}`, `{"detail-type":"x","detail":{"state":["initializing","running"]}}`, true},
		{"exists false object is not a leaf", `{"detail":{"c-count":[{"exists":false}]}}`, `{"detail":{"c-count":{"c1":100}}}`, true},
		{"exists false present", `{"detail":{"c-count":[{"exists":false}]}}`, `{"detail":{"c-count":5}}`, false},
		{"exists false parent absent", `{"detail":{"c-count":[{"exists":false}]}}`, `{"source":"x"}`, true},
		{"exists false empty array", `{"tags":[{"exists":false}]}`, `{"tags":[]}`, true},
		{"exists true", `{"detail":{"c-count":[{"exists":true}]}}`, `{"detail":{"c-count":5}}`, true},
		{"exists true absent", `{"detail":{"c-count":[{"exists":true}]}}`, `{"detail":{}}`, false},
		{"exists true object", `{"detail":{"c-count":[{"exists":true}]}}`, `{"detail":{"c-count":{"c1":100}}}`, false},
		{"exists true null is a value", `{"detail":{"c-count":[{"exists":true}]}}`, `{"detail":{"c-count":null}}`, true},
		{"exists false or value", `{"x":["a",{"exists":false}]}`, `{"y":1}`, true},

		// wildcard
		{"wildcard", `{"EventBusArn":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]}`, `{"EventBusArn":"arn:aws:events:us-east-1:123456789012:event-bus/default"}`, true},
		{"wildcard no", `{"EventBusArn":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]}`, `{"EventBusArn":"arn:aws:events:us-west-2:123456789012:event-bus/default"}`, false},
		{"wildcard dir png", `{"FileName":[{"wildcard":"dir/*.png"}]}`, `{"FileName":"dir/a.png"}`, true},
		{"wildcard dir jpg", `{"FileName":[{"wildcard":"dir/*.png"}]}`, `{"FileName":"dir/a.jpg"}`, false},
		{"wildcard star only", `{"s":[{"wildcard":"*"}]}`, `{"s":""}`, true},
		{"wildcard no overlap", `{"s":[{"wildcard":"ab*ba"}]}`, `{"s":"aba"}`, false},
		{"wildcard escaped star", `{"s":[{"wildcard":"a\\*b"}]}`, `{"s":"a*b"}`, true},
		{"wildcard escaped star literal", `{"s":[{"wildcard":"a\\*b"}]}`, `{"s":"axb"}`, false},
		{"wildcard escaped backslash", `{"s":[{"wildcard":"a\\\\*"}]}`, `{"s":"a\\bc"}`, true},
		{"wildcard strings only", `{"s":[{"wildcard":"*"}]}`, `{"s":5}`, false},

		// $or, at the top level and nested.
		{"or nested first", `{"detail":{"$or":[{"c-count":[{"numeric":[">",0,"<=",5]}]},{"d-count":[{"numeric":["<",10]}]},{"x-limit":[{"numeric":["=",3.018e2]}]}]}}`, `{"detail":{"d-count":3}}`, true},
		{"or nested none", `{"detail":{"$or":[{"c-count":[{"numeric":[">",0,"<=",5]}]},{"d-count":[{"numeric":["<",10]}]}]}}`, `{"detail":{"c-count":9,"d-count":30}}`, false},
		{"or with and", `{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPUUtilization","ReadLatency"]},{"metricType":["MetricType"],"namespace":["AWS/EC2","AWS/ES"]},{"scope":["Service"]}]}`, `{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/ES"}`, true},
		{"or with and partial", `{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPUUtilization"]},{"metricType":["MetricType"],"namespace":["AWS/EC2"]}]}`, `{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/ES"}`, false},
		{"or fails and", `{"source":["aws.cloudwatch"],"$or":[{"scope":["Service"]},{"metricName":["CPUUtilization"]}]}`, `{"source":"aws.s3","scope":"Service"}`, false},
		{"or nested in or", `{"$or":[{"a":["1"]},{"$or":[{"b":["2"]},{"c":["3"]}]}]}`, `{"c":"3"}`, true},

		// A nested pattern object is matched by one array element as a whole.
		{"object in array same element", `{"items":{"name":["a"],"qty":[1]}}`, `{"items":[{"name":"b","qty":2},{"name":"a","qty":1}]}`, true},
		{"object in array across elements", `{"items":{"name":["a"],"qty":[1]}}`, `{"items":[{"name":"a","qty":2},{"name":"b","qty":1}]}`, false},

		// The documentation's combined example.
		{"complex", `{"time":[{"prefix":"2017-10-02"}],"detail":{"state":[{"anything-but":"initializing"}],"c-count":[{"numeric":[">",0,"<=",5]}],"d-count":[{"numeric":["<",10]}],"x-limit":[{"anything-but":[100,200,300]}]}}`,
			`{"time":"2017-10-02T18:43:48Z","detail":{"state":"running","c-count":2,"d-count":3,"x-limit":150}}`, true},
		{"complex no", `{"time":[{"prefix":"2017-10-02"}],"detail":{"state":[{"anything-but":"initializing"}],"c-count":[{"numeric":[">",0,"<=",5]}],"d-count":[{"numeric":["<",10]}],"x-limit":[{"anything-but":[100,200,300]}]}}`,
			`{"time":"2017-10-02T18:43:48Z","detail":{"state":"running","c-count":2,"d-count":3,"x-limit":300}}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.pattern))
			if err != nil {
				t.Fatalf("Parse(%s): %v", tc.pattern, err)
			}
			got, err := p.Match([]byte(tc.event))
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tc.want {
				t.Errorf("Match(%s, %s) = %v, want %v", tc.pattern, tc.event, got, tc.want)
			}
		})
	}
}

func TestMatchEventErrors(t *testing.T) {
	p, err := Parse([]byte(`{"source":["x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{``, `{`, `[]`, `"x"`, `{"a":1} {"b":2}`} {
		if _, err := p.Match([]byte(ev)); err == nil {
			t.Errorf("Match(%q): want error", ev)
		}
	}
}

// TestSeedRule covers the rule the DatabaseEvent docs started from: as
// written it is invalid; corrected it matches inserts and not updates.
func TestSeedRule(t *testing.T) {
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := Parse(read("rule-example-as-written.json")); err == nil {
		t.Fatal("Parse(as written): want error")
	}
	p, err := Parse(read("rule-example-corrected.json"))
	if err != nil {
		t.Fatalf("Parse(corrected): %v", err)
	}
	for _, tc := range []struct {
		event string
		want  bool
	}{{"event-insert.json", true}, {"event-update.json", false}} {
		got, err := p.Match(read(tc.event))
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Match(corrected, %s) = %v, want %v", tc.event, got, tc.want)
		}
	}
}
