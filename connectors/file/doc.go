// Package file holds the newline-delimited connectors: the `file` and
// `stdin` sources, which emit one record per line, and the `file` and
// `stdout` sinks, which write one record value per line.
//
// Records are bytes, not text: a source strips only the '\n' ending each
// line (a '\r' before it stays), and a sink writes each value as it is
// followed by '\n'. A value that itself contains '\n' is therefore read back
// as several lines.
package file
