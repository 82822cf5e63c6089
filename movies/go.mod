module github.com/movies-microservices/movies

go 1.26
