module github.com/keygate-dev/keygate/bench/authz/inenvoy

go 1.26.0
