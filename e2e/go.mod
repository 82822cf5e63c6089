module github.com/movies-microservices/e2e

go 1.26
