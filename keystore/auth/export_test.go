package auth

import "github.com/redis/go-redis/v9"

// SetTestRedis gives this package's internal tests the test Redis that TestMain started.
func SetTestRedis(c redis.UniversalClient) { testRedis = c }
