#include "standalone/ranks.h"

#include "standalone/cli_common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace mw::cli {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> own_command_line() {
    std::ifstream f("/proc/self/cmdline", std::ios::binary);
    const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::string> args;
    std::string cur;
    for (char c : all) {
        if (c == '\0') {
            args.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (args.empty()) throw std::runtime_error("--gpus: cannot read this process's command line (/proc/self/cmdline)");
    return args;
}

std::vector<std::string> visible_gpus(int gpus) {
    std::vector<std::string> ids;
    if (const char* env = std::getenv("CUDA_VISIBLE_DEVICES"); env && *env) {
        std::stringstream ss(env);
        for (std::string id; std::getline(ss, id, ',');) ids.push_back(id);
        if (int(ids.size()) < gpus)
            throw UsageError("--gpus " + std::to_string(gpus) + ": CUDA_VISIBLE_DEVICES lists only " +
                             std::to_string(ids.size()) + " (" + env + ")");
    } else {
        for (int i = 0; i < gpus; ++i) ids.push_back(std::to_string(i));
    }
    ids.resize(size_t(gpus));
    return ids;
}

} // namespace

int run_ranks(int gpus, const std::string& log_dir) {
    const std::vector<std::string> base = own_command_line();
    const std::vector<std::string> ids = visible_gpus(gpus);
    fs::create_directories(log_dir);
    char rendezvous[] = "/tmp/mambawave-ranks-XXXXXX";
    if (!mkdtemp(rendezvous)) throw std::runtime_error("--gpus: cannot make a rendezvous directory in /tmp");

    // Everything a child needs is made before fork: between fork and exec it calls only what is
    // safe in a copy of a process that may have had other threads. Its environment: this one's,
    // with CUDA_VISIBLE_DEVICES (the last entry) set per rank.
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
        if (std::string(*e).rfind("CUDA_VISIBLE_DEVICES=", 0) != 0) env.push_back(*e);
    env.emplace_back();
    std::vector<pid_t> pids;
    for (int r = 0; r < gpus; ++r) {
        std::vector<std::string> args = base;
        for (const std::string& a : {std::string("--rank"), std::to_string(r), std::string("--world-size"),
                                     std::to_string(gpus), std::string("--rendezvous"), std::string(rendezvous)})
            args.push_back(a);
        const std::string log = (fs::path(log_dir) / ("rank" + std::to_string(r) + ".log")).string();
        env.back() = "CUDA_VISIBLE_DEVICES=" + ids[size_t(r)];
        std::vector<char*> argv, envp;
        for (std::string& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        for (std::string& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
        const int log_fd = r > 0 ? open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        if (r > 0 && log_fd < 0) throw std::runtime_error("--gpus: cannot write " + log);
        const pid_t pid = fork();
        if (pid < 0) throw std::runtime_error("--gpus: fork failed");
        if (pid == 0) {
            setpgid(0, 0);  // Ctrl-C reaches the launcher only, which passes it on once
            if (log_fd >= 0) {
                dup2(log_fd, 1);
                dup2(log_fd, 2);
            }
            execve("/proc/self/exe", argv.data(), envp.data());
            _exit(127);
        }
        if (log_fd >= 0) close(log_fd);
        pids.push_back(pid);
    }
    note("started " + std::to_string(gpus) + " training processes, one per GPU (" + [&] {
        std::string s;
        for (const std::string& id : ids) s += (s.empty() ? "" : ",") + id;
        return s;
    }() + "); ranks 1.." + std::to_string(gpus - 1) + " write to " + log_dir + "/rankN.log");

    int result = 0;
    bool forwarded = false, stopping = false;
    std::vector<bool> running(pids.size(), true);
    for (size_t left = pids.size(); left > 0;) {
        if (interrupted() && !forwarded) {
            for (size_t i = 0; i < pids.size(); ++i)
                if (running[i]) kill(pids[i], SIGINT);
            forwarded = true;
        }
        int status = 0;
        const pid_t done = waitpid(-1, &status, WNOHANG);
        if (done <= 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        for (size_t i = 0; i < pids.size(); ++i) {
            if (pids[i] != done) continue;
            running[i] = false;
            --left;
            const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            if (code == 0) continue;
            if (result == 0 || is_interrupted_exit(result)) result = code;  // the first real failure is the story
            // 130 or 143: interrupted (SIGINT, SIGTERM), and so are the others, each finishing its
            // checkpoint: let them be. Any other failure leaves the rest waiting for it in NCCL
            // forever, where no flag is looked at: end them (SIGKILL, since SIGTERM only asks).
            if (!is_interrupted_exit(code) && !stopping) {
                note("rank " + std::to_string(i) + " failed (exit " + std::to_string(code) + ")" +
                     (i > 0 ? "; its log: " + log_dir + "/rank" + std::to_string(i) + ".log" : "") +
                     "; stopping the others");
                stopping = true;
                for (size_t j = 0; j < pids.size(); ++j)
                    if (running[j]) kill(pids[j], SIGKILL);
            }
        }
    }
    fs::remove_all(rendezvous);
    return result;
}

} // namespace mw::cli
