// Command movies serves the movie API of movies-microservices.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "movies: %v\n", err)
		os.Exit(1)
	}
}
