package clientenv

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Shell is a shell dialect `dtls env` can write for.
type Shell string

// The shells dtls env writes for, with the names docker-machine's env command
// accepts for --shell (docker/machine commands/env.go).
const (
	// Bash is bash and every POSIX shell (sh, dash, ksh): the output only
	// uses `export NAME='value'` and `unset NAME`, which POSIX specifies.
	Bash Shell = "bash"
	// Zsh is zsh; the syntax is the same as Bash's.
	Zsh Shell = "zsh"
	// Fish is the fish shell.
	Fish Shell = "fish"
	// PowerShell is Windows PowerShell and PowerShell 7 (pwsh).
	PowerShell Shell = "powershell"
	// Cmd is the Windows command prompt, cmd.exe.
	Cmd Shell = "cmd"
	// Tcsh is tcsh and csh: `setenv NAME 'value';`, fed to the shell with
	// eval "`dtls env --shell tcsh`" (docker-machine's tcsh usage line,
	// with double quotes so that the output is not split on blanks).
	Tcsh Shell = "tcsh"
	// Nushell is nu. Nushell has no eval: the output is a record (JSON,
	// which is also nu syntax) that `from json | load-env` applies.
	Nushell Shell = "nushell"
)

// Shells lists every Shell, for flag completion and help.
var Shells = []Shell{Bash, Zsh, Fish, PowerShell, Cmd, Tcsh, Nushell}

// ParseShell returns the Shell named s, case-insensitively. It also accepts
// "pwsh", the executable name of PowerShell 7, "csh" for tcsh and "nu" for
// nushell. The error lists the valid
// names.
func ParseShell(s string) (Shell, error) {
	name := strings.ToLower(s)
	switch name {
	case "pwsh":
		return PowerShell, nil
	case "csh":
		return Tcsh, nil
	case "nu":
		return Nushell, nil
	}
	for _, sh := range Shells {
		if string(sh) == name {
			return sh, nil
		}
	}
	return "", fmt.Errorf("unknown shell %q (valid: %s)", s, shellList())
}

func shellList() string {
	names := make([]string, len(Shells))
	for i, sh := range Shells {
		names[i] = string(sh)
	}
	return strings.Join(names, ", ")
}

// DetectShell picks a Shell from the value of $SHELL, passed in as shellEnv:
// its base name (with any directory, ".exe" suffix or login-shell "-" prefix
// removed) selects zsh, fish or PowerShell (pwsh, powershell). Anything else
// selects Bash, including sh, dash and ksh, since the output for Bash is
// plain POSIX shell. When shellEnv is empty on Windows, where cmd.exe and
// PowerShell do not set $SHELL, the result is PowerShell, the default Windows
// terminal shell; a Windows POSIX shell such as Git Bash does set $SHELL.
func DetectShell(shellEnv string) Shell {
	return detectShell(shellEnv, runtime.GOOS)
}

func detectShell(shellEnv, goos string) Shell {
	if shellEnv == "" && goos == "windows" {
		return PowerShell
	}
	// Split on both separators whatever the OS: $SHELL under MSYS or Cygwin
	// may be either form.
	name := shellEnv[strings.LastIndexAny(shellEnv, `/\`)+1:]
	name = strings.ToLower(strings.TrimPrefix(name, "-"))
	name = strings.TrimSuffix(name, ".exe")
	if sh, ok := shellOfProgram(name); ok {
		return sh
	}
	return Bash
}

// shellOfProgram maps a program name (without directory, "-" or ".exe") to
// the Shell whose syntax it reads.
func shellOfProgram(name string) (Shell, bool) {
	switch name {
	case "bash", "sh", "dash", "ksh", "mksh", "ash", "busybox":
		return Bash, true
	case "zsh":
		return Zsh, true
	case "fish":
		return Fish, true
	case "pwsh", "powershell":
		return PowerShell, true
	case "tcsh", "csh":
		return Tcsh, true
	case "nu":
		return Nushell, true
	case "cmd":
		return Cmd, true
	}
	return "", false
}

// ParentShell returns the shell that runs dtls, from the name of the parent
// process, and false when the parent is not a shell dtls knows or cannot be
// found. $SHELL names the login shell, not the one the user is typing in:
// under eval "$(dtls env)" in bash started from zsh, the parent is a bash
// (the command-substitution subshell), under `dtls env | source` it is fish,
// under eval "`dtls env`" tcsh, under `dtls env | from json | load-env` nu.
// It reads /proc/PPID/comm on Linux, a single small file; on macOS the
// caller asks the kernel (see ShellOfProcess); elsewhere it returns false
// and DetectShell's $SHELL rule applies.
func ParentShell() (Shell, bool) {
	if runtime.GOOS != "linux" {
		return "", false
	}
	data, err := os.ReadFile("/proc/" + itoa(os.Getppid()) + "/comm")
	if err != nil {
		return "", false
	}
	return shellOfComm(string(data))
}

func shellOfComm(comm string) (Shell, bool) {
	name := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(comm), "-"))
	return shellOfProgram(strings.TrimSuffix(name, ".exe"))
}

func itoa(n int) string {
	if n <= 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Var is one environment variable to set.
type Var struct {
	// Name is the variable's name.
	Name string
	// Value is the variable's value.
	Value string
}

// VarNames are the variables `dtls env` sets, in the order Vars returns them,
// for `dtls env --unset`.
var VarNames = []string{"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"}

// Vars returns the variables that point the Docker CLI at b's daemon, in the
// order of VarNames:
//
//   - DOCKER_HOST is b.Meta.DockerHost, or hostOverride when it is not empty
//     (e.g. to reach the daemon through a tunnel or another name);
//   - DOCKER_TLS_VERIFY is "1": the Docker CLI enables TLS and verifies the
//     daemon's certificate when it is set to any non-empty value (Docker CLI
//     reference, "Environment variables"); "1" is what docker-machine sets;
//   - DOCKER_CERT_PATH is b.Dir, where the CLI finds ca.pem, cert.pem and
//     key.pem.
func Vars(b *Bundle, hostOverride string) []Var {
	host := b.Meta.DockerHost
	if hostOverride != "" {
		host = hostOverride
	}
	return []Var{
		{Name: "DOCKER_HOST", Value: host},
		{Name: "DOCKER_TLS_VERIFY", Value: "1"},
		{Name: "DOCKER_CERT_PATH", Value: b.Dir},
	}
}

// ValueError reports a value that cannot be written safely for a shell, for
// instance a path holding a newline, or a "&" for cmd. Nothing is written
// when WriteSet returns it.
type ValueError struct {
	// Shell is the shell the value was to be written for.
	Shell Shell
	// Name is the variable's name.
	Name string
	// Value is the refused value.
	Value string
	// Reason says what is wrong with Value, e.g. `contains a newline`.
	Reason string
}

// Error implements error.
func (e *ValueError) Error() string {
	return fmt.Sprintf("cannot write %s for %s: value %q %s", e.Name, e.Shell, e.Value, e.Reason)
}

// WriteSet writes to w the commands that set vars in sh, one line each, then
// the two comment lines docker-machine's env command ends with:
//
//	# Run this command to configure your shell:
//	# eval "$(dtls env)"
//
// where the second line is usage, the exact command to show (see UsageHint),
// and the comment marker is "REM" for cmd. An empty usage writes no comment.
//
// Every value is written as a literal, so that the shell sets it byte for
// byte with no expansion of $, `, %, globs or anything else (see quote). A
// name that is not a portable variable name, a value holding a newline or
// another control character, or a value that sh cannot take safely is
// refused with an error that names it, and then nothing at all is written: a
// half-written output would leave an eval'ing shell half configured.
func WriteSet(w io.Writer, sh Shell, vars []Var, usage string) error {
	if err := checkShell(sh); err != nil {
		return err
	}
	if sh == Nushell {
		return writeNushellSet(w, vars)
	}
	var b strings.Builder
	for _, v := range vars {
		if err := checkName(v.Name); err != nil {
			return err
		}
		q, err := quote(sh, v.Name, v.Value)
		if err != nil {
			return err
		}
		switch sh {
		case Bash, Zsh:
			// POSIX "export name=word" (Shell Command Language, "export").
			fmt.Fprintf(&b, "export %s=%s\n", v.Name, q)
		case Fish:
			// -g: global, so the variable outlives `source`'s block;
			// -x: exported to child processes such as docker (fish
			// manual, "set").
			fmt.Fprintf(&b, "set -gx %s %s;\n", v.Name, q)
		case PowerShell:
			// The Env: drive, about_Environment_Variables.
			fmt.Fprintf(&b, "$Env:%s = %s\n", v.Name, q)
		case Cmd:
			fmt.Fprintf(&b, "SET %s=%s\n", v.Name, q)
		case Tcsh:
			// The ";" keeps the commands apart if the output reaches
			// eval as one line (docker-machine does the same).
			fmt.Fprintf(&b, "setenv %s %s;\n", v.Name, q)
		}
	}
	if err := writeUsage(&b, sh, usage); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteUnset writes to w the commands that remove names from the environment
// of sh, then the usage comment as WriteSet does:
//
//   - bash, zsh: `unset NAME` (POSIX "unset"; no error if NAME is not set);
//   - fish: `set -e -g NAME;`, which erases the global variable that
//     WriteSet's `set -gx` created (or that was inherited from the
//     environment) but never a universal variable of the same name, which
//     fish stores on disk for every session (fish manual, "set": without a
//     scope flag, --erase takes "the variable of that name in the smallest
//     possible scope", which may be the universal one);
//   - PowerShell: `Remove-Item Env:\NAME -ErrorAction SilentlyContinue`,
//     since Remove-Item fails on a variable that is not set
//     (about_Environment_Variables);
//   - cmd: `SET NAME=`, which deletes NAME: SET with nothing after the
//     equal sign clears the variable (Microsoft's reference for the set
//     command); docker-machine unsets the same way.
func WriteUnset(w io.Writer, sh Shell, names []string, usage string) error {
	if err := checkShell(sh); err != nil {
		return err
	}
	var b strings.Builder
	for _, name := range names {
		if err := checkName(name); err != nil {
			return err
		}
		switch sh {
		case Bash, Zsh:
			fmt.Fprintf(&b, "unset %s\n", name)
		case Fish:
			fmt.Fprintf(&b, "set -e -g %s;\n", name)
		case PowerShell:
			fmt.Fprintf(&b, "Remove-Item Env:\\%s -ErrorAction SilentlyContinue\n", name)
		case Cmd:
			fmt.Fprintf(&b, "SET %s=\n", name)
		case Tcsh:
			fmt.Fprintf(&b, "unsetenv %s;\n", name)
		}
	}
	if sh == Nushell {
		// hide-env must run in the user's scope, and nushell has no
		// eval: the line is for the user to run (or paste).
		fmt.Fprintf(&b, "hide-env --ignore-errors %s\n", strings.Join(names, " "))
		_, err := io.WriteString(w, b.String())
		return err
	}
	if err := writeUsage(&b, sh, usage); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// UsageHint returns the command that feeds the output of commandLine (e.g.
// "dtls env --shell fish") to sh, as docker-machine's env command shows it,
// for the usage argument of WriteSet and WriteUnset:
//
//   - bash, zsh: eval "$(dtls env)"; the double quotes keep the output's
//     quoting intact (POSIX word splitting would otherwise re-split it);
//   - fish: dtls env | source (fish manual, "source": reads standard input
//     when no file is given);
//   - PowerShell: & dtls env --shell powershell | Invoke-Expression;
//   - cmd: @FOR /f "tokens=*" %i IN ('dtls env --shell cmd') DO @%i, which
//     runs each output line as a command;
//   - tcsh: eval "`dtls env --shell tcsh`";
//   - nushell: dtls env --shell nushell | from json | load-env.
func UsageHint(sh Shell, commandLine string) string {
	switch sh {
	case Fish:
		return commandLine + " | source"
	case PowerShell:
		return "& " + commandLine + " | Invoke-Expression"
	case Cmd:
		return `@FOR /f "tokens=*" %i IN ('` + commandLine + `') DO @%i`
	case Tcsh:
		return "eval \"`" + commandLine + "`\""
	case Nushell:
		return commandLine + " | from json | load-env"
	default:
		return `eval "$(` + commandLine + `)"`
	}
}

func writeUsage(b *strings.Builder, sh Shell, usage string) error {
	// An interactive tcsh has no comments: "#" lines would run as
	// commands ("#: Command not found") under eval.
	if usage == "" || sh == Tcsh {
		return nil
	}
	// A control character (a newline above all) would end the comment and
	// turn the rest of the usage line into a command.
	if strings.IndexFunc(usage, unicode.IsControl) >= 0 {
		return fmt.Errorf("usage line %q contains a control character", usage)
	}
	comment := "#"
	if sh == Cmd {
		// REM runs as a command, harmlessly, under FOR /f ... DO @%i.
		comment = "REM"
	}
	fmt.Fprintf(b, "%s Run this command to configure your shell:\n%s %s\n", comment, comment, usage)
	return nil
}

func checkShell(sh Shell) error {
	for _, s := range Shells {
		if s == sh {
			return nil
		}
	}
	return fmt.Errorf("unknown shell %q (valid: %s)", sh, shellList())
}

// checkName accepts the portable variable names of POSIX (Base Definitions,
// 8.1 "Environment Variable Definition": letters, digits and underscore, not
// starting with a digit). Names are written unquoted, so this is what keeps
// them from being code in any of the shells.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("invalid variable name %q", name)
	}
	for i, c := range name {
		if c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return fmt.Errorf("invalid variable name %q", name)
	}
	return nil
}

// quote returns value as a literal for sh, or a *ValueError.
//
// For every shell a value must be one line of text: a newline would end the
// command (and for cmd's FOR /f and PowerShell's pipeline, which split the
// output into lines, start a new one), NUL cannot be in an environment
// variable at all (execve(2) takes NUL-terminated strings), and the other
// control characters (ESC above all) would let a value rewrite the terminal
// when `dtls env` is run without eval.
func quote(sh Shell, name, value string) (string, error) {
	if reason := ValueProblem(value); reason != "" {
		return "", &ValueError{Shell: sh, Name: name, Value: value, Reason: reason}
	}
	switch sh {
	case Bash, Zsh:
		return posixQuote(value), nil
	case Fish:
		return fishQuote(value), nil
	case PowerShell:
		if !utf8.ValidString(value) {
			// PowerShell decodes a native command's output as text
			// ([Console]::OutputEncoding); invalid UTF-8 cannot survive.
			return "", &ValueError{Shell: sh, Name: name, Value: value, Reason: "is not valid UTF-8"}
		}
		return powerShellQuote(value), nil
	case Cmd:
		return cmdValue(name, value)
	case Tcsh:
		return tcshQuote(value), nil
	case Nushell:
		if !utf8.ValidString(value) {
			return "", &ValueError{Shell: sh, Name: name, Value: value, Reason: "is not valid UTF-8"}
		}
		return value, nil
	}
	return "", checkShell(sh)
}

// ValueProblem says why value cannot be the value of a variable WriteSet
// writes for any shell ("contains control character U+0085", "contains a
// newline"), or "" when it can: the rule 'dtls env' applies, for callers
// that check a value before it is stored (dtls import checks a bundle's
// docker_host with it). Control characters are Unicode's (category Cc),
// C1 ones such as U+0085 (NEL) included: some terminals and editors take
// them for a line break.
func ValueProblem(value string) string {
	for _, c := range value {
		if !unicode.IsControl(c) {
			continue
		}
		if c == '\n' {
			return "contains a newline"
		}
		return fmt.Sprintf("contains control character %U", c)
	}
	return ""
}

// posixQuote encloses s in single quotes. Inside single quotes every
// character is literal and the only character that cannot appear is the
// single quote itself (POSIX Shell Command Language, 2.2.2 "Single-Quotes";
// bash manual, 3.1.2.2), so each quote in s is written as
//
//	'\''
//
// which ends the quoted string, adds a backslash-escaped quote and starts a
// new quoted string. zsh's RC_QUOTES option, which reads two quotes in a row
// inside a quoted string as one quote, does not change the meaning: every
// quote that ends a quoted string here is followed by a backslash or by the
// end of the word, never by another quote.
func posixQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fishQuoter escapes for fish single quotes, see fishQuote.
var fishQuoter = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// fishQuote encloses s in fish single quotes, between which "fish performs
// no expansions" and "the only meaningful escape sequences ... are \', which
// escapes a single quote and \\, which escapes the backslash symbol" (fish
// manual, fish-language, "Quotes"): $, ( and everything else are literal.
func fishQuote(s string) string {
	return "'" + fishQuoter.Replace(s) + "'"
}

// powerShellQuote encloses s in a single-quoted (verbatim) string, inside
// which $ and the backtick are literal and a quote is written twice
// (about_Quoting_Rules). PowerShell's tokenizer takes not only ' but also
// U+2018, U+2019, U+201A and U+201B as single quotes (PowerShell language
// specification, 2.3.5.2, single-quote-character), so an unescaped ’ in a
// path would end the string: each of them is doubled as well. A doubled pair
// stands for its second character, so doubling a character with itself keeps
// it as it was.
func powerShellQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, c := range s {
		switch c {
		case '\'', '\u2018', '\u2019', '\u201A', '\u201B':
			b.WriteRune(c)
		}
		b.WriteRune(c)
	}
	b.WriteByte('\'')
	return b.String()
}

// cmdUnsafe are the characters whose meaning in `SET NAME=value` depends on
// how the line reaches cmd.exe, so that no single spelling is right.
//
// Through the FOR /f "tokens=*" %i IN ('dtls env --shell cmd') DO @%i loop
// that UsageHint shows, cmd has already split the DO command into commands
// and handled ^, &, |, <, >, quotes and %var% before %i is replaced, so the
// value arrives verbatim and ^-escaping would put the carets into the value
// (FOR /? and `help set`; the phase model of cmd's parser in "How does the
// Windows Command Interpreter (CMD.EXE) parse scripts?", Stack Overflow
// question 4094699). Pasted at a prompt or saved as a .cmd file, the same
// line is parsed from scratch: & | < > start new commands or redirections,
// " switches that off, ^ escapes, and % expands variables (with %% needed
// in a .cmd file but not at a prompt). ! is expanded even inside the FOR
// loop when delayed expansion is on (cmd /V:ON or the DelayedExpansion
// registry value). Windows forbids " < > | in file names anyway; a bundle
// directory holding & ^ % or ! has to move (or use PowerShell).
//
// Parentheses are allowed: outside a parenthesised block, where these lines
// always run, cmd treats ( and ) in SET's argument as text, which matters for
// paths under "Program Files (x86)".
const cmdUnsafe = `"%!^&|<>`

// cmdValue returns value unquoted for `SET NAME=value`, where SET takes
// everything after the first "=" to the end of the line, or a *ValueError
// when value holds a character from cmdUnsafe, is not valid UTF-8 (cmd reads
// the output in the console code page), or ends in a space (FOR /f with its
// default delimiters is documented to strip leading delimiters; whether
// trailing ones survive "tokens=*" is not, so such a value is refused rather
// than guessed at).
func cmdValue(name, value string) (string, error) {
	if i := strings.IndexAny(value, cmdUnsafe); i >= 0 {
		return "", &ValueError{Shell: Cmd, Name: name, Value: value,
			Reason: fmt.Sprintf("contains %q, which cmd cannot take safely", value[i:i+1])}
	}
	if !utf8.ValidString(value) {
		return "", &ValueError{Shell: Cmd, Name: name, Value: value, Reason: "is not valid UTF-8"}
	}
	if strings.HasSuffix(value, " ") {
		return "", &ValueError{Shell: Cmd, Name: name, Value: value, Reason: "ends in a space, which cmd may drop"}
	}
	return value, nil
}

// tcshQuote encloses s in single quotes for tcsh, inside which $, `, * and
// \ are literal (tcsh(1), "Lexical structure"), with two exceptions: a
// single quote ends the string, and history substitution still sees "!"
// (tcsh(1): "history substitution ... can be prevented by a backslash or
// quotes, except for '!'"... in an interactive shell, even under eval).
// Each ' is written as '\” and each ! as '\!', closing the quoted string
// and escaping the character with a backslash outside it.
func tcshQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '!':
			b.WriteString("'\\")
			b.WriteByte(c)
			b.WriteByte('\'')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// writeNushellSet writes vars as one nushell record, which is also a JSON
// object, for `from json | load-env`: nushell has no eval, and a record of
// strings is the one thing both parse the same way. encoding/json escapes
// " and \ (and control characters, which quote has refused already).
func writeNushellSet(w io.Writer, vars []Var) error {
	var b strings.Builder
	b.WriteString("{")
	for i, v := range vars {
		if err := checkName(v.Name); err != nil {
			return err
		}
		if _, err := quote(Nushell, v.Name, v.Value); err != nil {
			return err
		}
		val, err := json.Marshal(v.Value)
		if err != nil {
			return fmt.Errorf("encode %s for nushell: %w", v.Name, err)
		}
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  %q: %s", v.Name, val)
	}
	b.WriteString("\n}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDotenv writes vars as KEY=value lines, the file format CI systems
// take for environment variables (GitHub Actions' $GITHUB_ENV, GitLab's
// artifacts:reports:dotenv) and `docker run --env-file`. Those readers take
// the value literally up to the end of the line, with no quote removal, so
// values are written unquoted; a value with a newline or another control
// character is refused (and nothing written), since it would end the line.
func WriteDotenv(w io.Writer, vars []Var) error {
	var b strings.Builder
	for _, v := range vars {
		if err := checkName(v.Name); err != nil {
			return err
		}
		for _, c := range v.Value {
			if unicode.IsControl(c) {
				reason := fmt.Sprintf("contains control character %U", c)
				if c == '\n' {
					reason = "contains a newline"
				}
				return &ValueError{Shell: "dotenv", Name: v.Name, Value: v.Value, Reason: reason}
			}
		}
		fmt.Fprintf(&b, "%s=%s\n", v.Name, v.Value)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
