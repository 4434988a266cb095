// Package infra holds walbridge's deployment: template.yaml, an AWS SAM
// template for the Kinesis stream, the fanout Lambda, the EventBridge bus and
// the capture instance, and ec2/, the capture instance's user data, systemd
// unit and start wrapper, which the template inlines.
//
// The package has no code of its own: its tests read the template and the
// files offline and check what a deployment relies on (the event source
// mapping's failure handling, least-privilege IAM, IMDSv2 and no SSH, the
// alarms, that the inline user data matches ec2/, and that the scripts
// behave). See README.md for deploying.
package infra
