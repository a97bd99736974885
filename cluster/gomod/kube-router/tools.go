//go:build tools

// Package tools names the programs this module builds, so that go mod tidy keeps their dependencies.
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
