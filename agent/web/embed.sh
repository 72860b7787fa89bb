#!/bin/sh
# embed.sh FILE NAME - print a C file defining `const char NAME[]` (the
# file's text) and `const unsigned long NAME_len`.
set -eu
printf '/* generated from %s by embed.sh; do not edit */\n' "$1"
printf 'const char %s[] =\n' "$2"
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/\\n"/' "$1"
printf ';\nconst unsigned long %s_len = sizeof(%s) - 1;\n' "$2" "$2"
