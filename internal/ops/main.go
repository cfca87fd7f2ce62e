package ops

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// NewLogger returns a slog logger writing to w. level is debug, info, warn or error; format is
// json or text. Errors name the flags that set them.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

// LogFlags are --log-level and --log-format, which every server takes. A server's Config
// embeds them, which makes it a Command.
type LogFlags struct {
	LogLevel, LogFormat string
}

// AddLogFlags defines the flags on fs.
func (l *LogFlags) AddLogFlags(fs *flag.FlagSet) {
	fs.StringVar(&l.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&l.LogFormat, "log-format", "json", "json or text")
}

// NewLogger returns the logger the flags ask for, writing to w.
func (l LogFlags) NewLogger(w io.Writer) (*slog.Logger, error) {
	return NewLogger(w, l.LogLevel, l.LogFormat)
}

// Command is a server's parsed command line.
type Command interface {
	NewLogger(w io.Writer) (*slog.Logger, error)
}

// Main is every server's main: it parses args, builds the logger, and runs until SIGINT or
// SIGTERM. It returns the exit status: 0, or after --help; 2 for a bad command line (told on
// stderr, prefixed with name); 1 when run fails (logged).
func Main[C Command](name string, args []string, parse func([]string) (C, error), run func(context.Context, C, *slog.Logger) error) int {
	c, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	log, err := c.NewLogger(os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	ctx, stop := SignalContext()
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error(name+" failed", "error", err)
		return 1
	}
	return 0
}
