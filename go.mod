module github.com/packnow/packnow-operator

go 1.26.0
