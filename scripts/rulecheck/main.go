// Command rulecheck checks EventBridge event patterns for DatabaseEvents
// before they are deployed, because EventBridge accepts many patterns that
// can never match (a misspelt field, an operation walbridge never sends) and
// then silently delivers nothing.
//
//	go run ./scripts/rulecheck [--columns-from-json FILE] [--detail-type NAME] FILE...
//
// Each FILE is a bare event pattern, a JSON object with an "EventPattern" key
// (as aws events describe-rule prints) or a "FilterConfiguration" key (an
// ordered-bus subscriber as the EventBridgeV2 API shows it), or a
// CloudFormation/SAM template in YAML or JSON, in which every
// AWS::Events::Rule EventPattern, every SAM EventBridgeRule/CloudWatchEvent
// Pattern and every AWS::EventsV2::Subscriber filter is checked. A
// subscriber's DATA filter must fit the DatabaseEvent contract like a rule,
// and subscribers' own limits apply: the scopes (one filter each), one
// filter language, 1 to 50 filters of at most 4,096 characters, no wildcard
// operator. It prints
// one line per problem, "FILE: FIELD: message", or "FILE: ok", and exits 1
// if any file has a problem.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
