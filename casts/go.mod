module github.com/movies-microservices/casts

go 1.26
