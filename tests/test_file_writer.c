/* Files as hostile input and artifact writers (io/file.h): inputs that are not regular files are
 * refused without blocking; output paths are checked before the work; writers of one directory
 * take turns (across processes and threads, re-entrant within a thread); a killed writer's
 * temporaries are reaped by the next writer, a live writer's never. Writers are real processes
 * (fork): one that exits without cleaning up is what SIGKILL leaves. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "io/file.h"

static void test_open_regular(void) {
    int fd = -1;
    CHECK_OK(vlm_write_file(test_tmp("plain.txt"), "abc", 3));
    CHECK_OK(vlm_open_regular(test_tmp("plain.txt"), &fd));
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    /* a FIFO without a writer: a blocking open would wait forever */
    CHECK(mkfifo(test_tmp("fifo"), 0600) == 0);
    CHECK_ERR(vlm_open_regular(test_tmp("fifo"), &fd), VLM_ERR_IO, "fifo is a FIFO (named pipe), not a regular file");
    CHECK(fd == -1);
    char *data = NULL;
    size_t len;
    CHECK_ERR(vlm_read_file(test_tmp("fifo"), 0, &data, &len), VLM_ERR_IO, "is a FIFO");
    vlm_mapping m;
    CHECK_ERR(vlm_map_file(test_tmp("fifo"), &m), VLM_ERR_IO, "is a FIFO");
    CHECK_ERR(vlm_copy_file(test_tmp("fifo"), test_tmp("copy")), VLM_ERR_IO, "is a FIFO");
    CHECK_ERR(vlm_read_file("/dev/zero", 0, &data, &len), VLM_ERR_IO, "/dev/zero is a character device");
    CHECK_ERR(vlm_read_file(test_tmpdir(), 0, &data, &len), VLM_ERR_IO, "is a directory, not a regular file");
    CHECK_ERR(vlm_read_file(test_tmp("absent"), 0, &data, &len), VLM_ERR_IO, "No such file");
}

static void test_output_paths(void) {
    CHECK_OK(vlm_check_output_path(test_tmp("new.json"), "--json"));
    CHECK_OK(vlm_check_output_path("/dev/null", "--json"));
    CHECK_ERR(vlm_check_output_path(test_tmp("nodir/x.json"), "--json"), VLM_ERR_NOT_FOUND, "does not exist");
    CHECK_ERR(vlm_check_output_path(test_tmpdir(), "--dump"), VLM_ERR_INVALID, "--dump");
    CHECK_OK(vlm_write_file(test_tmp("afile"), "x", 1));
    CHECK_ERR(vlm_check_output_path(test_tmp("afile/x.json"), "--out"), VLM_ERR_INVALID, "not a directory");
    CHECK_ERR(vlm_check_output_path("", "--out"), VLM_ERR_INVALID, "empty");
    /* a device is written in place, not replaced by a renamed file */
    CHECK_OK(vlm_write_file("/dev/null", "hello", 5));
    struct stat st;
    CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
}

static int count_entries(const char *dir, const char *needle) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c -- '%s'", dir, needle);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

/* A child that makes a temporary directory and a temporary file in dir and exits without cleaning
 * up, as a killed writer would. Returns its (now dead) pid. */
static pid_t killed_writer(const char *dir) {
    pid_t pid = fork();
    if (pid == 0) {
        char final[VLM_PATH_MAX];
        vlm_tmp_dir t;
        snprintf(final, sizeof final, "%s/part", dir);
        if (vlm_tmp_dir_create(&t, final) != VLM_OK) _exit(1);
        snprintf(final, sizeof final, "%s/part/data.bin", t.path);
        vlm_write_file(final, "weights", 7);
        vlm_atomic_file a;
        snprintf(final, sizeof final, "%s/model.onnx", dir);
        if (vlm_atomic_open(&a, final) != VLM_OK) _exit(1);
        fputs("half a model", a.f);
        fflush(a.f);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return pid;
}

static void test_reap_killed_writers(void) {
    const char *dir = test_tmp("reap");
    CHECK_OK(vlm_mkdirs(dir));
    killed_writer(dir);
    CHECK(count_entries(dir, "vlm-tmp") == 2);
    /* a live writer's temporary, and a name vlm does not make */
    int to_child[2], from_child[2];
    CHECK(pipe(to_child) == 0 && pipe(from_child) == 0);
    pid_t live = fork();
    if (live == 0) {
        char final[VLM_PATH_MAX];
        vlm_tmp_dir t;
        snprintf(final, sizeof final, "%s/live", dir);
        if (vlm_tmp_dir_create(&t, final) != VLM_OK) _exit(1);
        char c = 1;
        if (write(from_child[1], &c, 1) != 1 || read(to_child[0], &c, 1) < 0) _exit(1);
        _exit(0);
    }
    char c;
    CHECK(read(from_child[0], &c, 1) == 1);
    char other[VLM_PATH_MAX];
    snprintf(other, sizeof other, "%s/notes.tmp.1", dir);
    CHECK_OK(vlm_mkdirs(other));
    int removed = -1;
    CHECK_OK(vlm_reap_temporaries(dir, &removed));
    CHECK(removed == 2);
    CHECK(count_entries(dir, "vlm-tmp") == 1); /* the live one */
    CHECK(vlm_is_dir(other));
    /* the live writer is killed: its temporary goes at the next writer's lock */
    kill(live, SIGKILL);
    int st;
    waitpid(live, &st, 0);
    vlm_dir_lock lock;
    CHECK_OK(vlm_writer_lock(dir, &lock));
    vlm_writer_unlock(&lock);
    CHECK(count_entries(dir, "vlm-tmp") == 0);
    close(to_child[0]), close(to_child[1]), close(from_child[0]), close(from_child[1]);
}

/* A temporary whose pid is gone but which a process still holds locked (its writer runs in
 * another PID namespace sharing the directory) is not reaped. */
static void test_reap_respects_locks(void) {
    const char *dir = test_tmp("reap_locked");
    CHECK_OK(vlm_mkdirs(dir));
    pid_t dead = killed_writer(dir);
    char path[VLM_PATH_MAX];
    snprintf(path, sizeof path, "%s/part.vlm-tmp.%d", dir, (int)dead);
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    int removed = -1;
    CHECK_OK(vlm_reap_temporaries(dir, &removed));
    CHECK(removed == 1); /* the unlocked file only */
    CHECK(vlm_is_dir(path));
    close(fd);
    CHECK_OK(vlm_reap_temporaries(dir, &removed));
    CHECK(removed == 1 && !vlm_path_exists(path));
}

/* Another process holds the lock: this one waits, then sees what that one wrote. */
static void test_lock_across_processes(void) {
    const char *dir = test_tmp("lock");
    CHECK_OK(vlm_mkdirs(dir));
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        vlm_dir_lock l;
        if (vlm_writer_lock(dir, &l) != VLM_OK) _exit(1);
        char c = 1;
        if (write(ready[1], &c, 1) != 1) _exit(1);
        usleep(300 * 1000);
        char p[VLM_PATH_MAX];
        snprintf(p, sizeof p, "%s/done", dir);
        vlm_write_file(p, "1", 1);
        vlm_writer_unlock(&l);
        _exit(0);
    }
    char c;
    CHECK(read(ready[0], &c, 1) == 1);
    vlm_dir_lock l;
    CHECK_OK(vlm_writer_lock(dir, &l));
    CHECK(vlm_path_exists(test_tmp("lock/done")));
    vlm_writer_unlock(&l);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(ready[0]), close(ready[1]);
}

typedef struct {
    const char *dir;
    int *counter, max_seen;
} lock_arg;

static void *lock_thread(void *p) {
    lock_arg *a = p;
    for (int i = 0; i < 20; i++) {
        vlm_dir_lock l, again;
        if (vlm_writer_lock(a->dir, &l) != VLM_OK) return NULL;
        if (vlm_writer_lock(a->dir, &again) != VLM_OK) return NULL; /* re-entry in the same thread */
        int inside = __atomic_add_fetch(a->counter, 1, __ATOMIC_SEQ_CST);
        if (inside > a->max_seen) a->max_seen = inside;
        usleep(500);
        __atomic_sub_fetch(a->counter, 1, __ATOMIC_SEQ_CST);
        vlm_writer_unlock(&again);
        vlm_writer_unlock(&l);
    }
    return NULL;
}

/* Threads of one process take turns too (flock alone would let them all in). */
static void test_lock_across_threads(void) {
    const char *dir = test_tmp("lock_threads");
    CHECK_OK(vlm_mkdirs(dir));
    int counter = 0;
    lock_arg a[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (lock_arg){dir, &counter, 0};
        pthread_create(&t[i], NULL, lock_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(a[i].max_seen == 1);
    }
}

static void test_replace_dir(void) {
    const char *final = test_tmp("art/vision");
    CHECK_OK(vlm_mkdirs(final));
    CHECK_OK(vlm_write_file(test_tmp("art/vision/old.txt"), "old", 3));
    vlm_tmp_dir t;
    CHECK_OK(vlm_tmp_dir_create(&t, final));
    char p[VLM_PATH_MAX];
    snprintf(p, sizeof p, "%s/new.txt", t.path);
    CHECK_OK(vlm_write_file(p, "new", 3));
    CHECK_OK(vlm_replace_dir(t.path, final));
    vlm_tmp_dir_close(&t);
    CHECK(vlm_path_exists(test_tmp("art/vision/new.txt")) && !vlm_path_exists(test_tmp("art/vision/old.txt")));
    CHECK(count_entries(test_tmp("art"), "vlm-tmp") == 0);
    /* an aborted one leaves nothing */
    CHECK_OK(vlm_tmp_dir_create(&t, final));
    vlm_tmp_dir_abort(&t);
    CHECK(count_entries(test_tmp("art"), "vlm-tmp") == 0);
}

int main(void) {
    RUN(test_open_regular);
    RUN(test_output_paths);
    RUN(test_reap_killed_writers);
    RUN(test_reap_respects_locks);
    RUN(test_lock_across_processes);
    RUN(test_lock_across_threads);
    RUN(test_replace_dir);
    return test_summary();
}
