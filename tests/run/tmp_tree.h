/*
 * tmp_tree: removes a test's temporary folder and all it holds, safely: it
 * walks the folder's own entries through descriptors (openat with
 * O_NOFOLLOW, unlinkat), so a symlink inside is removed, never followed, and
 * it never leaves the folder's file system. What it is given is the only
 * path it names; it never globs.
 */
#ifndef TMP_TREE_H
#define TMP_TREE_H

/* How deep a folder may nest below dir before tmp_tree_remove gives up
 * (-ELOOP): the tests' folders nest three or four levels. */
#define TMP_TREE_MAX_DEPTH 32

/* Removes every entry below dir (files, sockets, symlinks themselves,
 * folders depth first), then dir itself. dir must be a folder, not a
 * symlink to one (-ENOTDIR, -ELOOP). An entry on another file system (a
 * mount point inside) is not entered: -EXDEV. 0, or the first -errno met;
 * it goes on past a failure and removes what it can. */
int tmp_tree_remove(const char *dir);

#endif
