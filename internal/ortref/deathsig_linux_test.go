package ortref

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNodeDiesWithParent starts a child test process that starts a Runner
// and is then killed with SIGKILL, so it cannot close the Runner: node must
// die too.
func TestNodeDiesWithParent(t *testing.T) {
	if os.Getenv("ORTREF_HELPER_PROCESS") == "1" {
		r, err := Start()
		if err != nil {
			fmt.Println("error " + err.Error())
			os.Exit(1)
		}
		fmt.Println("node " + strconv.Itoa(r.proc.cmd.Process.Pid))
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeDiesWithParent$")
	cmd.Env = append(os.Environ(), "ORTREF_HELPER_PROCESS=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "node ") {
		t.Fatalf("helper said %q, %v", line, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "node ")))
	if err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatalf("node %d not running", pid)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait() // "signal: killed", as intended
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("node %d still running 10s after its parent was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
