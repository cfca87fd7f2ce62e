package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// printing makes cmd print what get reads from Redis as JSON or YAML, as --output says.
func printing(cmd *cobra.Command, s streams, get func(ctx context.Context, rdb redisConn, args []string) (any, error)) *cobra.Command {
	var output string
	cmd.Flags().StringVar(&output, "output", "json", "output format: json or yaml")
	return withRedis(cmd, func(ctx context.Context, rdb redisConn, args []string) error {
		if err := checkOutput(output); err != nil {
			return err
		}
		v, err := get(ctx, rdb, args)
		if err != nil {
			return err
		}
		return printObject(s.stdout, output, v)
	})
}

// printObject writes v as JSON or YAML. The objects come from the stores, which never return a
// plain key nor a password hash, so nothing printed here can hold one.
func printObject(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	return checkOutput(format)
}

func checkOutput(format string) error {
	if format != "json" && format != "yaml" {
		return usageError(fmt.Sprintf("--output %q: want json or yaml", format))
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
