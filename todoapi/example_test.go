package todoapi_test

import (
	"log"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/todoapi"
)

// The Todo API as a process: tokens verified by the issuer's published keys
// for the API's own audience, only delegated tokens of the MCP server
// accepted, lists kept in Redis.
func ExampleNew() {
	api, err := todoapi.New(todoapi.Options{
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{
			Issuer:    "https://pingfederate.example.com:9031",
			Audiences: []string{"https://todo.example.com/api"},
		}),
		AllowedActors: []string{"pingmcp"},
		Store:         todoapi.NewRedisStore(redis.NewClient(&redis.Options{Addr: "localhost:6379"}), "pingmcp:todoapi:"),
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe(":8081", api))
}
