// Command casts serves the cast API of movies-microservices.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "casts: %v\n", err)
		os.Exit(1)
	}
}
