# bash completion for dealimportctl: commands, their options, and the ids of
# imports, asked of the supervisor with `dealimportctl list --json` (running
# imports for pause, cancel, show and watch; paused ones for resume).
# Installed as /usr/share/bash-completion/completions/dealimportctl; works
# without the bash-completion package too (only COMP_WORDS/COMP_CWORD).

# Prints the ids of the imports in status $1 (any status when empty),
# passing on the --config and --connect the command line already has.
_dealimportctl_ids()
{
    local status=$1 i args=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --config | --connect | --server-key | --key)
                args+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}") ;;
        esac
    done
    [ -n "$status" ] && args+=(--status "$status")
    "${COMP_WORDS[0]:-dealimportctl}" list --json --timeout 1 --limit 1000 \
        "${args[@]}" 2>/dev/null |
        grep -o '"id": *"[0-9a-f]\{24\}"' | grep -o '[0-9a-f]\{24\}'
}

_dealimportctl()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="status list show pause resume cancel watch metrics enqueue revert errors events run keygen"
    local common="--json --timeout --connect --server-key --key --help"
    local cmd="" i words
    COMPREPLY=()

    # The command is the first word after the global options (and their
    # arguments).
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --config | --timeout | --connect) ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done

    case $prev in
        --config | --file | --server-key | --key)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0 ;;
        --status)
            COMPREPLY=($(compgen -W "pending processing paused completed failed cancelled" -- "$cur"))
            return 0 ;;
        --date-order)
            COMPREPLY=($(compgen -W "MDY DMY YMD auto" -- "$cur"))
            return 0 ;;
        --decimal)
            COMPREPLY=($(compgen -W ". , auto" -- "$cur"))
            return 0 ;;
        --timeout | --interval | --limit | --since | --connect | --account | --user | \
            --pipeline | --map | --tags | --parent-account | --client)
            return 0 ;;
    esac

    if [ -z "$cmd" ]; then
        if [[ $cur == -* ]]; then
            words="--config --json --timeout --connect --help --version"
        else
            words=$commands
        fi
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return 0
    fi

    if [[ $cur == -* ]]; then
        case $cmd in
            status | show | pause | resume | cancel | metrics) words=$common ;;
            list) words="--status --account --since --limit --all $common" ;;
            watch) words="--interval $common" ;;
            enqueue) words="--file --account --user --pipeline --map --tags --parent-account --client --dry-run --date-order --decimal --wait --json --help" ;;
            revert) words="--dry-run --json --help" ;;
            errors) words="--limit --output --json --help" ;;
            events) words="--limit --json --help" ;;
            run) words="--json --help" ;;
            keygen) words="--json --help" ;;
        esac
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return 0
    fi

    case $cmd in
        pause | cancel | show | watch)
            COMPREPLY=($(compgen -W "$(_dealimportctl_ids processing)" -- "$cur")) ;;
        resume)
            COMPREPLY=($(compgen -W "$(_dealimportctl_ids paused)" -- "$cur")) ;;
        revert | errors | events | run)
            COMPREPLY=($(compgen -W "$(_dealimportctl_ids '')" -- "$cur")) ;;
        keygen)
            COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
    return 0
}
complete -F _dealimportctl dealimportctl
