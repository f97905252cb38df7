//go:build tools

// Package tools pins the Traefik command so `go mod tidy` keeps its dependencies.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
